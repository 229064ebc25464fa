"""`floorline generate` and `floorline decode --check` end to end on the CPU (subprocesses, as a user
runs them): JSON shapes, the reference and the fast path agreeing on tokens, logits files, exit codes."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np


def cli(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "floorline", *args], capture_output=True, text=True, timeout=timeout)


def test_generate_reference_and_fast_path_agree(tmp_path):
    common = ["generate", "--model", "tiny-moe", "--prompt-ids", "5,9,11;3,4", "--max-new-tokens", "3",
              "--device", "cpu", "--json"]
    ref = cli(*common, "--dtype", "float64", "--logits-out", str(tmp_path / "l.npy"))
    fast = cli(*common, "--dtype", "bf16")
    assert ref.returncode == 0 and fast.returncode == 0, ref.stderr + fast.stderr
    r, f = json.loads(ref.stdout), json.loads(fast.stdout)
    assert r["path"].startswith("reference") and f["path"].startswith("fast")
    assert r["tokens"] == f["tokens"] and len(r["tokens"]) == 2 and all(len(t) == 3 for t in r["tokens"])
    assert r["ms_per_token"] > 0 and r["batch"] == 2
    logits = np.load(tmp_path / "l.npy")
    assert logits.shape == (3, 2, 211) and np.isfinite(logits).all()


def test_cut_down_is_reported():
    r = cli("generate", "--model", "small-moe", "--layers", "2", "--experts", "8", "--prompt-ids", "1,2",
            "--max-new-tokens", "1", "--device", "cpu", "--dtype", "float64", "--json")
    out = json.loads(r.stdout)
    assert out["layers"] == 2 and out["experts"] == 8
    assert out["cut_down"] == ["layers 2 of 4", "experts 8 of 16"]


def test_decode_check_json():
    r = cli("decode", "--check", "--model", "tiny-moe", "--device", "cpu", "--steps", "2", "--batch", "2",
            "--tolerance", "0.02", "--no-evidence", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["passed"] and out["greedy_match"] and len(out["per_step_rel_l2"]) == 3
    assert out["max_rel_l2_kv_matched"] < 1e-3 and out["routing_decisions"] > 0


def test_bad_input_is_one_line_exit_2():
    for args in (
        ["generate", "--model", "tiny-moe", "--prompt-ids", "1,x", "--device", "cpu", "--dtype", "float64"],
        ["generate", "--model", "tiny-moe", "--prompt-ids", "1,99999", "--device", "cpu", "--dtype", "float64"],
        ["generate", "--model", "tiny-moe", "--prompt-ids", "1", "--tp", "2", "--device", "cpu"],
        ["generate", "--model", "tiny-moe", "--prompt-ids", "1", "--dtype", "int4", "--device", "cpu"],
        ["decode", "--check", "--model", "tiny-moe", "--dtype", "float64", "--device", "cpu"],
        ["bench", "decode", "--tp", "2"],
    ):
        r = cli(*args)
        assert r.returncode == 2, (args, r.stderr)
        assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr, r.stderr
