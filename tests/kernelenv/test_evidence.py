"""Every attempt, pass or fail, leaves a verifiable kernelenv.attempt packet that names how to replay it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from floorline.evidence.store import verify_packet
from floorline.kernelenv.evidence import run_attempt
from floorline.kernelenv.task import TASKS_DIR, resolve_task

HONEST = (TASKS_DIR.parent / "candidates" / "rmsnorm.py").read_text()
MUTATE = (Path(__file__).parent / "adversarial" / "input_mutation.py").read_text()


def test_passing_attempt_packet(timed_harness, tmp_path):
    att, path = run_attempt(timed_harness, resolve_task("rmsnorm"), HONEST, tmp_path)
    p = verify_packet(path)
    assert p.kind == "kernelenv.attempt" and p.status == "passed" and p.failure_class is None
    assert p.params["candidate_sha256"] == att.candidate_sha256 and p.params["reward"] == att.reward
    assert p.correctness.passed and p.correctness.value <= 1.0 and p.correctness.seeds == [att.seed]
    assert p.timing.median == att.timing["median"] and p.timing.method == att.timing["method"]
    assert p.baselines[0].name == "Baseline" and p.baselines[0].ratio == att.speedup
    assert p.command[:3] == ["floorline", "kernelenv", "eval"] and "--seed" in p.command
    # the replay runs on the device kind the attempt ran on
    assert p.command[p.command.index("--device") + 1] == p.params["device"]
    names = {Path(a.path).name for a in p.artifacts}
    assert "candidate.py" in names
    cand = next(a for a in p.artifacts if a.path.endswith("candidate.py"))
    assert (tmp_path / cand.path).read_text() == HONEST
    assert p.compiler.tool == "triton" and p.compiler.version


def test_failing_attempt_packet_and_tamper_detection(harness, tmp_path):
    att, path = run_attempt(harness, resolve_task("rmsnorm"), MUTATE, tmp_path)
    p = verify_packet(path)
    assert p.status == "failed" and p.failure_class == "input_mutation" and p.params["reward"] == -1.0
    assert any("changed" in n for n in p.notes)
    data = json.loads(path.read_text())
    data["params"]["reward"] = 1.0  # a forged reward no longer matches the sealed id
    path.write_text(json.dumps(data))
    r = subprocess.run([sys.executable, "-m", "floorline", "evidence", "verify", str(path)], capture_output=True, text=True)
    assert r.returncode != 0


def test_replay_reproduces_the_verdict(harness, tmp_path):
    """The packet's command, run again with its seed, reaches the same verdict on the same inputs."""
    att, path = run_attempt(harness, resolve_task("rmsnorm"), MUTATE, tmp_path)
    again = harness.evaluate(resolve_task("rmsnorm"), MUTATE, seed=att.seed)
    assert again.failure_class == att.failure_class and again.seed == att.seed
