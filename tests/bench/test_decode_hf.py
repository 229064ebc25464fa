"""The transformers baseline of `bench decode` (floorline.bench.decode_hf): its static-cache step must
compute what transformers' default DynamicCache step computes on the same context, and the compiled
settings what the eager ones do (GPU). The baseline is a timing peer, but a wrong cache fill (context
masked away, positions off by one) would make it do less work than ours and flatter it."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("transformers")

from floorline.bench.decode_hf import BY_NAME, SETTINGS, HFBaseline, choose_baseline  # noqa: E402
from floorline.model.config import builtin  # noqa: E402
from floorline.model.weights import random_weights  # noqa: E402


def _rel(a, b):
    return float((a.double() - b.double()).norm() / b.double().norm())


def _steps(w, name, n=3, batch=2, context=37):
    step = HFBaseline(w, BY_NAME[name]).prepare(batch, context, n)
    return [step().clone().float() for _ in range(n)]  # a CUDA-graph replay overwrites its last output


# float32 weights: in bf16 a one-ulp difference can flip an expert choice (measured: 8e-2 on one row),
# which would hide a real cache bug behind a loose tolerance. Measured static vs dynamic: 3e-7.
CPU_TOL = 1e-5


def test_static_cache_step_equals_dynamic_cache_step():
    w = random_weights(builtin("small-moe"), dtype="float32", seed=4)
    static, dynamic = _steps(w, "static-eager"), _steps(w, "dynamic-eager")
    for s, d in zip(static, dynamic, strict=True):
        assert torch.isfinite(s).all()
        assert _rel(s, d) < CPU_TOL, _rel(s, d)


def test_context_is_read():
    """Same weights and new tokens, another random context: the logits must move (the static cache's
    filled positions are attended to, not masked)."""
    w = random_weights(builtin("small-moe"), dtype="float32", seed=4)
    a = HFBaseline(w, BY_NAME["static-eager"])
    one = a.prepare(1, 37, 1)()
    other = a.prepare(1, 38, 1)()  # one more random key/value, and every value redrawn
    assert _rel(one, other) > 1e-2


def test_settings_are_ordered_compiled_first():
    assert SETTINGS[0].compile_mode == "reduce-overhead" and SETTINGS[0].cache == "static"
    assert SETTINGS[-1].cache == "dynamic" and SETTINGS[-1].compile_mode is None


@pytest.mark.gpu
def test_compiled_static_matches_eager_and_is_chosen():
    w = random_weights(builtin("small-moe"), dtype="float32", device="cuda", seed=4)
    compiled, eager = _steps(w, "static-compile-cudagraphs"), _steps(w, "static-eager")
    for c, e in zip(compiled, eager, strict=True):
        assert _rel(c, e) < 1e-2, _rel(c, e)  # float32 (TF32 matmuls may differ between the two)
    w = random_weights(builtin("small-moe"), dtype="bf16", device="cuda", seed=4)
    best, info = choose_baseline(w, progress=lambda _: None, settings=SETTINGS[:1] + SETTINGS[-1:])
    assert best is not None and info["tried"][0]["status"] == "ok" and info["tried"][0]["ms_per_token"] > 0


class _Fake:
    """Stands in for HFBaseline: a table of ms/token (or an exception) per setting name."""

    table: dict = {}

    def __init__(self, w, setting):
        self.setting = setting
        if isinstance(self.table[setting.name], Exception):
            raise self.table[setting.name]

    def measure(self, batch, context, iters):
        class R:
            median = self.table[self.setting.name] * 1e3  # us

        return R()

    def describe(self):
        return {"setting": self.setting.name}


def test_choose_baseline_keeps_the_fastest_that_works_and_records_every_try(monkeypatch):
    import floorline.bench.decode_hf as D

    monkeypatch.setattr(D, "HFBaseline", _Fake)
    _Fake.table = {"static-compile-cudagraphs": RuntimeError("dynamo: unsupported op"),
                   "static-compile-cudagraphs-grouped": 30.0, "static-compile": 12.0,
                   "static-eager": 70.0, "dynamic-eager": 75.0}
    best, info = D.choose_baseline(None, progress=lambda _: None)
    assert best.setting.name == "static-compile" and info["setting"] == "static-compile"
    tried = {t["setting"]: t for t in info["tried"]}
    assert tried["static-compile-cudagraphs"]["status"] == "failed"
    assert "unsupported op" in tried["static-compile-cudagraphs"]["reason"]
    assert tried["static-compile-cudagraphs-grouped"]["ms_per_token"] == 30.0
    # a compiled setting works: the eager fallbacks are not run
    assert tried["static-eager"]["status"] == tried["dynamic-eager"]["status"] == "skipped"


def test_choose_baseline_falls_back_to_eager_when_nothing_compiles(monkeypatch):
    import floorline.bench.decode_hf as D

    monkeypatch.setattr(D, "HFBaseline", _Fake)
    err = RuntimeError("no compiler")
    _Fake.table = {"static-compile-cudagraphs": err, "static-compile-cudagraphs-grouped": err,
                   "static-compile": err, "static-eager": 80.0, "dynamic-eager": 70.0}
    best, info = D.choose_baseline(None, progress=lambda _: None)
    assert best.setting.name == "dynamic-eager"  # the faster of the two that worked
    assert [t["status"] for t in info["tried"]] == ["failed", "failed", "failed", "ok", "ok"]
