"""scripts/bench_atomics.py: its exact-sum check passes for the atomic kernel and catches a kernel that
stores instead of adding (the row starts at 3.0, not zero)."""

import importlib.util
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "bench_atomics.py"


def _load():
    spec = importlib.util.spec_from_file_location("bench_atomics", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_sums_exact_on_odd_shapes():
    mod = _load()
    for programs, width, row in ((7, 16, 64), (5, 32, 32), (9, 64, 128)):
        mod.check(programs, width, row, "cuda" if mod.torch.cuda.is_available() else "cpu")


def test_check_catches_a_store(monkeypatch):
    mod = _load()
    monkeypatch.setattr(mod, "launch", lambda src, out, programs, width, row: out[: width].copy_(src[0]))
    with pytest.raises(SystemExit, match="wrong sums"):
        mod.check(4, 16, 32, "cpu")
