"""`bench decode`'s packet and table, written on the CPU from made-up timings (the fields, not speed):
the fastest transformers setting is *the* baseline, and the eager one, when measured, is a second peer."""

from __future__ import annotations

import pytest

from floorline.bench import decode as bench
from floorline.evidence.store import read_json
from floorline.gpu.timing import TimingResult
from floorline.model.config import builtin
from floorline.model.fast import DEFAULT_KV_DTYPE, LaunchConfigs
from floorline.model.weights import random_weights


def _timing(ms: float) -> TimingResult:
    return TimingResult([ms * 1e3 * f for f in (0.99, 1.0, 1.01)], "cuda_events", 1)


def _point(eager_ms: float | None, eager_reason: str | None = None) -> bench.Point:
    p = bench.Point(1, 1024, ms=2.0, timing=_timing(2.0), floor_bytes=3e9, floor_ms=1.4, experts_hit=[8, 8])
    p.hf_ms, p.hf_timing, p.hf_config = 7.0, _timing(7.0), {"setting": "static-compile-cudagraphs", "version": "x"}
    if eager_ms is not None:
        p.hf_eager_ms, p.hf_eager_timing = eager_ms, _timing(eager_ms)
        p.hf_eager_config = {"setting": bench.EAGER_SETTING, "version": "x"}
    p.hf_eager_reason = eager_reason
    return p


@pytest.fixture(scope="module")
def weights():
    return random_weights(builtin("small-moe"), dtype="bf16", seed=3)


def test_packet_has_both_peers_with_ratios(weights, tmp_path):
    path = bench.write_point(weights, _point(90.0), "bf16", "fp16", 4.6, "test", LaunchConfigs(), {}, out_dir=tmp_path)
    pk = read_json(path)
    assert pk["kind"] == "bench.decode" and pk["params"]["kv_dtype"] == "fp16"
    names = [b["name"] for b in pk["baselines"]]
    assert names == ["transformers", "transformers-eager"]  # the fastest setting stays first, the baseline
    base, eager = pk["baselines"]
    assert base["ratio"] == pytest.approx(3.5) and eager["ratio"] == pytest.approx(45.0)
    assert eager["config"]["setting"] == bench.EAGER_SETTING and eager["timing"]["median"] == pytest.approx(90.0)
    assert any("second peer" in n and "45.0x" in n for n in pk["notes"])


def test_eager_failure_is_recorded_not_hidden(weights, tmp_path):
    pk = read_json(bench.write_point(weights, _point(None, "RuntimeError: out of memory"), "bf16", "fp16", 4.6,
                                     "test", LaunchConfigs(), {}, out_dir=tmp_path))
    eager = pk["baselines"][1]
    assert eager["name"] == "transformers-eager" and eager["status"] == "skipped"
    assert "out of memory" in eager["reason"]


def test_no_eager_entry_where_it_was_not_run(weights, tmp_path):
    pk = read_json(bench.write_point(weights, _point(None), "bf16", "fp16", 4.6, "test", LaunchConfigs(), {},
                                     out_dir=tmp_path))
    assert [b["name"] for b in pk["baselines"]] == ["transformers"]


def test_table_row_shows_both_ratios():
    rows = bench.summary_rows({"points": [_point(90.0), _point(None)]})
    assert len(bench.HEADERS) == len(rows[0]) == len(rows[1])
    assert rows[0][bench.HEADERS.index("vs transformers")] == "3.5x"
    assert rows[0][bench.HEADERS.index("vs eager")] == "45.0x (90.0 ms)"
    assert rows[1][bench.HEADERS.index("vs eager")] == "-"
    skipped = bench.Point(64, 131072, skipped="needs 400 GB")
    assert len(bench.summary_rows({"points": [skipped]})[0]) == len(bench.HEADERS)


def test_bench_and_check_default_to_the_same_kv_cache():
    """The benchmarked datapath is the validated one: both CLIs default to the decoder's default cache."""
    import inspect

    from floorline.model import run

    assert DEFAULT_KV_DTYPE == "fp16" and DEFAULT_KV_DTYPE in bench.BENCH_KV_DTYPES
    assert DEFAULT_KV_DTYPE in run.CHECK_KV_DTYPES
    assert inspect.signature(run.check).parameters["kv_dtype"].default == DEFAULT_KV_DTYPE


def test_cli_defaults_match_the_decoder(monkeypatch, capsys):
    """decode --check defaults to the decoder's cache; bench decode resolves its default to the same one
    (bf16 only with --tp, whose ranks keep a bf16 cache)."""
    import floorline.bench.decode_tp_cli as tp_cli
    import floorline.model.check_cli as check_cli
    from floorline.cli import main

    seen = []

    def fake_check(*a, **k):
        seen.append(("check", a[-1]))
        raise SystemExit(0)

    monkeypatch.setattr(check_cli, "run_check", fake_check)

    def fake_run(model, layers, experts, batches, contexts, weight_dtype, kv_dtype, *a, **k):
        seen.append(("single", kv_dtype))
        raise SystemExit(0)

    def fake_tp(model, layers, experts, tp, batches, contexts, weight_dtype, kv_dtype, *a, **k):
        seen.append(("tp", kv_dtype))
        raise SystemExit(0)

    monkeypatch.setattr(bench, "run", fake_run)
    monkeypatch.setattr(tp_cli, "run_tp_cli", fake_tp)

    def cli(*argv: str) -> int:
        with pytest.raises(SystemExit) as e:
            main(list(argv))
        return e.value.code

    assert cli("decode", "--check", "--model", "tiny-moe", "--no-evidence") == 0
    assert cli("decode", "--check", "--model", "tiny-moe", "--tp", "2", "--kv-dtype", "fp16") == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--kv-dtype" in err and "bf16" in err
    for argv in (["--no-evidence"], ["--no-evidence", "--tp", "2"], ["--no-evidence", "--kv-dtype", "bf16"]):
        assert cli("bench", "decode", *argv) == 0
    assert seen == [("check", DEFAULT_KV_DTYPE), ("single", DEFAULT_KV_DTYPE), ("tp", "bf16"), ("single", "bf16")]


def _row(bn, bk, warps, split, dbuf, us):
    from floorline.kernels.gemv import GemvConfig

    return {"config": GemvConfig(block_n=bn, block_k=bk, num_warps=warps, split_k=split, double_buffer=dbuf).__dict__,
            "us": us}


def test_gemv_runner_ups_are_the_near_ties_with_the_launch_flags():
    from dataclasses import replace

    from floorline.kernels.gemv import GemvConfig

    table = {"gate_up": {"candidates": [_row(16, 256, 4, 1, True, 18.77), _row(16, 256, 4, 1, False, 19.38),
                                        _row(1, 2048, 4, 1, False, 19.43), _row(8, 256, 4, 1, True, 19.95),
                                        {"config": GemvConfig().__dict__, "error": "compile"}]},
             "o": {"candidates": [_row(8, 2048, 8, 2, False, 6.91), _row(2, 2048, 4, 2, False, 7.22),
                                  _row(8, 512, 4, 4, False, 8.06)]},
             "step": {"chosen": "x"}}
    pick = {c: GemvConfig(**table[c]["candidates"][0]["config"]) for c in ("gate_up", "o")}
    # the launch as the tuner and then the step choice left it: the picks, with evict-first / preload set
    launch = replace(LaunchConfigs(), gate_up=replace(pick["gate_up"], evict_first=True),
                     o=replace(pick["o"], preload=True))
    ups = bench.gemv_runner_ups(launch, table)
    got = [(lbl.split()[0], getattr(v, lbl.split()[0])) for lbl, v in ups]
    # within 6% of the pick, the two nearest per class; the pick itself and errors are not runner-ups
    assert [(c, x.block_n, x.block_k, x.double_buffer) for c, x in got] == [
        ("gate_up", 16, 256, False), ("gate_up", 1, 2048, False), ("o", 2, 2048, False)]
    assert all(x.evict_first for c, x in got if c == "gate_up") and all(x.preload for c, x in got if c == "o")
    for lbl, v in ups:  # each changes its own class only
        cls = lbl.split()[0]
        assert replace(v, **{cls: getattr(launch, cls)}) == launch
    # a launch already on a runner-up tile gets the pick offered back, and not itself
    on_second = replace(launch, o=replace(GemvConfig(**table["o"]["candidates"][1]["config"]), preload=True))
    assert [(v.o.block_n, v.o.block_k) for lbl, v in bench.gemv_runner_ups(on_second, table, ("o",))] == [(8, 2048)]
    assert bench.gemv_runner_ups(launch, {}) == []


def test_choose_step_keeps_a_runner_up_only_if_the_step_is_faster(monkeypatch):
    """choose_step with a stand-in for the device measurement: the step is 3 ms except with a 1 x 2048
    gate-up tile (2.9 ms); that runner-up is kept and the later classes' runner-ups build on it."""
    seen = []

    def fake_measure(w, batch, context, kv_dtype, launch, iters):
        seen.append(launch)
        ms = 2.9 if launch.gate_up.block_n == 1 else 3.0

        class R:
            median = ms * 1e3

        return R(), []

    monkeypatch.setattr(bench, "measure_ours", fake_measure)
    table = {"gate_up": {"candidates": [_row(16, 256, 4, 1, True, 18.77), _row(1, 2048, 4, 1, False, 19.43)]},
             "down": {"candidates": [_row(8, 1024, 8, 1, False, 9.91), _row(8, 256, 4, 1, False, 10.08)]}}
    chosen, info = bench.choose_step(None, LaunchConfigs(), 1024, "fp16", 3, lambda m: None, table)
    assert chosen.gate_up.block_n == 1 and chosen.gate_up.block_k == 2048
    assert "gate_up 1x2048" in info["chosen"] and "down 8x256" not in info["chosen"]
    assert info["ms_per_token"][info["chosen"]] == pytest.approx(2.9)
    down_try = [v for v in seen if v.down.block_k == 256]
    assert len(down_try) == 1 and down_try[0].gate_up.block_n == 1  # built on the kept gate-up tile


def test_choose_step_skips_a_variant_that_fails_to_build(monkeypatch):
    def fake_measure(w, batch, context, kv_dtype, launch, iters):
        if launch.down.block_k == 256:
            raise RuntimeError("out of resources: shared memory")
        if not launch.pdl:  # one of the initial PDL settings
            raise RuntimeError("no PDL here")

        class R:
            median = 3.0e3

        return R(), []

    monkeypatch.setattr(bench, "measure_ours", fake_measure)
    table = {"down": {"candidates": [_row(8, 1024, 8, 1, False, 9.91), _row(8, 256, 4, 1, False, 10.08)]}}
    chosen, info = bench.choose_step(None, LaunchConfigs(), 1024, "fp16", 3, lambda m: None, table)
    assert info["failed"]["no PDL"] == "RuntimeError: no PDL here" and "no PDL" not in info["ms_per_token"]
    (name, why), = [(n, y) for n, y in info["failed"].items() if n != "no PDL"]
    assert "down 8x256" in name and "shared memory" in why and name not in info["ms_per_token"]
    assert chosen.down.block_k != 256
