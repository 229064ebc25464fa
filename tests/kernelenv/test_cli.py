"""`floorline kernelenv`: tasks, eval (one JSON object per attempt), and one-line errors with exit code 2."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from floorline.kernelenv.task import TASKS_DIR

ROOT = Path(__file__).resolve().parents[2]


def run(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "floorline", "kernelenv", *args], capture_output=True, text=True,
                          timeout=300, cwd=cwd)


def test_tasks_json():
    r = run("tasks", "--json")
    assert r.returncode == 0, r.stderr
    names = {t["name"] for t in json.loads(r.stdout)}
    assert "paged_decode_attention" in names and len(names) == 11


def test_eval_json_writes_a_packet(tmp_path):
    cand = TASKS_DIR.parent / "candidates" / "rope.py"
    r = run("eval", "rope", str(cand), "--json", "--no-timing", "--out", str(tmp_path))
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert {"status", "failure_class", "correct", "reward", "speedup", "evidence"} <= set(out)
    assert out["status"] == "passed" and out["correct"] and Path(out["evidence"]).exists()
    v = subprocess.run([sys.executable, "-m", "floorline", "evidence", "verify", out["evidence"]],
                       capture_output=True, text=True)
    assert v.returncode == 0, v.stdout + v.stderr


def test_eval_of_a_hack_exits_1_with_its_class(tmp_path):
    cand = Path(__file__).parent / "adversarial" / "lazy_output.py"
    r = run("eval", "rmsnorm", str(cand), "--json", "--no-evidence", "--no-timing")
    assert r.returncode == 1
    assert json.loads(r.stdout)["failure_class"] == "lazy_output"


def test_bad_input_is_one_line_exit_2(tmp_path):
    for args, needle in [(("eval", "nope", str(TASKS_DIR / "rmsnorm.py")), "not a file and not a shipped task"),
                         (("eval", "rmsnorm", str(tmp_path / "missing.py")), "no such file"),
                         (("eval", "rmsnorm", str(TASKS_DIR / "rmsnorm.py"), "--device", "tpu"), "--device"),
                         (("tasks", "--dir", str(tmp_path / "none")), "no such directory")]:
        r = run(*args)
        lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
        assert r.returncode == 2 and len(lines) == 1 and needle in lines[0], (args, r.stderr)
        assert "Traceback" not in r.stderr
