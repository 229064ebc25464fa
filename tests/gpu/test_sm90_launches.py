"""Recorded interpreter launches compiled for sm_90 in a child process (no GPU, no TRITON_INTERPRET):
a launch the GPU compiler refuses is named, its neighbour that compiles is not, the recorder keeps one
line per distinct launch, and interpreter-only flags are recorded as the GPU sees them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from floorline.gpu.sm90_launches import launch_record, recording

ROOT = Path(__file__).resolve().parents[2]


def _launch_dots(path: Path) -> None:
    from tests.gpu.sm90_demo_kernels import _dot_kernel

    gen = torch.Generator().manual_seed(4)
    with recording(str(path)):
        for k in (8, 16, 16):  # the repeated launch is recorded once
            a = torch.randn(16, k, generator=gen).half()
            b = torch.randn(k, 16, generator=gen).half()
            c = torch.full((16, 16), float("nan"))
            _dot_kernel[(1,)](a, b, c, M=16, N=16, K=k)
            assert torch.allclose(c, a.float() @ b.float(), atol=1e-2)  # the interpreter runs every K


def test_recorder_keeps_distinct_launches(tmp_path, triton_interpret):
    if not triton_interpret:
        pytest.skip("records interpreted launches (CPU)")
    path = tmp_path / "launches.jsonl"
    _launch_dots(path)
    recs = [json.loads(x) for x in path.read_text().splitlines()]
    assert [r["kwargs"]["K"]["value"] for r in recs] == [8, 16]
    assert recs[0]["kernel"] == "tests.gpu.sm90_demo_kernels:_dot_kernel"
    assert recs[0]["args"][0] == {"tensor": "float16", "aligned16": True}


def test_check_script_names_the_refused_launch(tmp_path, triton_interpret):
    if not triton_interpret:
        pytest.skip("records interpreted launches (CPU)")
    path = tmp_path / "launches.jsonl"
    _launch_dots(path)
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(ROOT / "src"), env.get("PYTHONPATH", "")])
    res = subprocess.run([sys.executable, str(ROOT / "scripts" / "check_sm90_launches.py"), str(path), "--json",
                          "--jobs", "1"], capture_output=True, text=True, env=env, timeout=600)
    assert res.returncode == 1, res.stderr[-2000:]
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out["launches"] == 2
    assert [f["launch"]["kwargs"]["K"]["value"] for f in out["failed"]] == [8]
    assert "K >= 16" in out["failed"][0]["error"]


def test_interpreter_flags_are_recorded_as_on_the_gpu():
    rec = launch_record(_dot_like, (torch.zeros(4),), {"UPCAST": True, "UPCAST_BF16": True, "BLOCK": 16})
    assert rec["kwargs"]["UPCAST"] == {"value": False} and rec["kwargs"]["UPCAST_BF16"] == {"value": False}
    assert rec["kwargs"]["BLOCK"] == {"value": 16}
    assert launch_record(_dot_like, (object(),), {}) is None  # cannot be rebuilt elsewhere: not recorded


def _dot_like():
    pass


def test_records_file_errors_exit_2(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(ROOT / "src"), env.get("PYTHONPATH", "")])
    res = subprocess.run([sys.executable, str(ROOT / "scripts" / "check_sm90_launches.py"), str(tmp_path / "nope.jsonl")],
                         capture_output=True, text=True, env=env, timeout=120)
    assert res.returncode == 2 and "records" in res.stderr and "Traceback" not in res.stderr
