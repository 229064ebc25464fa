"""The OpenEnv server, for real: uvicorn on 127.0.0.1, HTTP requests and the typed WebSocket client."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import pytest

pytest.importorskip("openenv")
httpx = pytest.importorskip("httpx")

from floorline.evidence.store import verify_packet  # noqa: E402
from floorline.kernelenv.task import TASKS_DIR  # noqa: E402

HONEST = (TASKS_DIR.parent / "candidates" / "rmsnorm.py").read_text()
CACHE_HACK = (Path(__file__).parent / "adversarial" / "result_cache.py").read_text()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    import uvicorn

    from floorline.kernelenv.app import build_app
    from floorline.kernelenv.harness import Harness, HarnessConfig

    out = tmp_path_factory.mktemp("evidence")
    app = build_app(out_dir=out, harness=Harness(HarnessConfig(device="cpu", timing=False)))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    th = threading.Thread(target=srv.run, daemon=True)
    th.start()
    deadline = time.monotonic() + 30
    while not srv.started:
        assert time.monotonic() < deadline, "server did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}", out
    srv.should_exit = True
    th.join(10)


def test_reset_step_over_http(server):
    url, out = server
    with httpx.Client(base_url=url, timeout=120) as c:
        r = c.post("/reset", json={"task": "rmsnorm"})
        assert r.status_code == 200, r.text
        obs = r.json()["observation"]
        assert obs["task"] == "rmsnorm" and "class Model" in obs["task_source"] and obs["status"] == "ready"
        r = c.post("/step", json={"action": {"source": HONEST, "task": "rmsnorm"}})
        assert r.status_code == 200, r.text
        body = r.json()
        o = body["observation"]
        assert o["status"] == "passed" and o["correct"] and o["failure_class"] is None
        assert body["reward"] == pytest.approx(0.1)  # a pass without timing earns the floor of the pass range
        packet = verify_packet(Path(o["evidence_path"]))
        assert packet.id == o["evidence_id"] and packet.kind == "kernelenv.attempt"
        assert Path(o["evidence_path"]).parent == out


def test_hack_over_http_gets_negative_reward(server):
    url, _ = server
    with httpx.Client(base_url=url, timeout=120) as c:
        body = c.post("/step", json={"action": {"source": CACHE_HACK, "task": "rmsnorm"}}).json()
        assert body["observation"]["failure_class"] == "result_cache"
        assert body["reward"] == -1.0


def test_bad_requests_are_4xx_and_server_stays_up(server):
    url, _ = server
    with httpx.Client(base_url=url, timeout=60) as c:
        assert c.post("/step", json={"action": {"source": ""}}).status_code == 422
        assert c.post("/step", json={"action": {"source": HONEST, "task": "no_such_task"}}).status_code == 422
        assert c.post("/step", json={"action": {"source": HONEST, "task": "../etc/passwd"}}).status_code == 422
        assert c.post("/step", json={"action": {"source": HONEST, "bogus": 1}}).status_code == 422
        assert c.post("/reset", json={"task": "no_such_task"}).status_code == 422
        assert c.get("/health").status_code == 200
        schema = c.get("/schema").json()
        assert "source" in schema["action"]["properties"] and "failure_class" in schema["observation"]["properties"]


def test_typed_client_session(server):
    from floorline.kernelenv.client import KernelEnvClient
    from floorline.kernelenv.models import KernelAction

    url, _ = server
    with KernelEnvClient(base_url=url).sync() as env:
        first = env.reset(task="rmsnorm")
        assert first.observation.task == "rmsnorm"
        res = env.step(KernelAction(source=CACHE_HACK))
        assert res.observation.failure_class == "result_cache" and res.reward == -1.0 and not res.done
        res = env.step(KernelAction(source=HONEST))
        assert res.observation.status == "passed" and res.done
        st = env.state()
        assert st.task == "rmsnorm" and st.attempts == 2 and st.solved
        assert st.failure_classes == ["result_cache", None]
