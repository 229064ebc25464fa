"""bench allreduce without a GPU: one-line errors (exit 2), and the packet writer on a synthetic
measurement (fields the issue's tests read: params, baselines with ratios, floor, verification)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from floorline.bench import allreduce as B


@pytest.mark.parametrize("args,needle", [(["--mode", "sideways"], "--mode"), (["--world", "9"], "--world"),
                                         (["--world", "1"], "--world")])
def test_bad_input_is_one_line_exit_2(args, needle) -> None:
    p = subprocess.run([sys.executable, "-m", "floorline", "bench", "allreduce", *args], capture_output=True, text=True)
    assert p.returncode == 2 and needle in p.stderr and "Traceback" not in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1


def _synthetic(world: int = 2) -> tuple[dict, dict, dict]:
    """A measurement shaped like run_process_mode's, with made-up samples (this tests the writer only)."""
    floor = {"one_way_us": 1.0, "round_trips": 100, "kernel_slot_us": 1.0, "pingpong_kernel_us": [200.0]}
    kern = {"attributes": {"registers": 40, "local_bytes": 64, "shared_bytes": 0}, "nvrtc": "13.0", "arch": "sm_90",
            "crossover": {"oneshot_max_bytes": 1 << 20, "twoshot_max_bytes": 4 << 20, "source": "test"}}
    ours, nccl, symm = [], {}, {}
    for size in (1024, 8192, 8 << 20):
        auto = "oneshot" if size <= (1 << 20) else "nccl"
        ours.append({"size_bytes": size, "n": size // 2, "auto": auto, "nccl": {}, "symm": {},
                     "ours": {"oneshot": {"graph": [3.0, 3.2, 3.1], "eager": [20.0, 21.0], "err": 0.4},
                              "twoshot": {"graph": [5.0, 5.1], "eager": [22.0], "err": 0.3}}})
        nccl[size] = {"configs": {"default/default": {"graph": [10.0, 11.0], "eager": [60.0], "err": 0.2},
                                  "NCCL_PROTO=LL/default": {"graph": [12.0], "eager": [61.0], "err": 0.2}},
                      "notes": {"default/registered_mempool": "failed: test"}}
        symm[size] = {"graph": [6.0, 6.2], "eager": [30.0], "err": 0.1} if size < (1 << 20) else \
            {"reason": "torch symmetric memory unavailable: test"}
    fused = {"hidden": 4096, "tokens": 1, "fused": [3.3], "plain": [3.0], "unfused": [9.0], "err": 0.5}
    proc = {"floor": floor, "ours": ours, "fused": fused, "nccl": nccl, "symm": symm, "kernel": kern}
    return proc, {"gbps": 400.0, "bytes": 1, "method": "test"}, {"process": proc}


def test_packets_carry_the_evidence_fields(tmp_path) -> None:
    from floorline.evidence.store import verify_packet

    proc, link, by_mode = _synthetic()
    cfg = B.BenchConfig(world=2, modes=("process",), sizes=(1024, 8192, 8 << 20))
    rows = B.build_rows("process", proc, proc, link, 2)
    paths = B.write_packets(rows, by_mode, proc, link, cfg, tmp_path)
    assert len(paths) == 3
    for p in paths:
        pk = verify_packet(p)
        assert pk.kind == "bench.allreduce"
        for k in ("size_bytes", "world", "mode", "graph", "algorithm", "dtype"):
            assert k in pk.params
        assert pk.params["mode"] == "process" and pk.params["graph"] is True and pk.params["world"] == 2
        n = pk.baseline("nccl")
        assert n.ratio == pytest.approx(n.timing.median / pk.timing.median)
        assert n.config["chosen"] == "default/default" and "NCCL_PROTO=LL/default" in n.config["tried"]
        assert pk.floor.value == 1.0 and pk.floor.fraction == pytest.approx(1.0 / pk.timing.median)
        assert pk.baseline("torch_symm_mem") is not None
    small = json.loads(paths[0].read_text())
    assert small["params"]["algorithm"] == "oneshot" and small["timing"]["median"] == pytest.approx(3.1)
    big = verify_packet(paths[2])
    assert big.params["algorithm"] == "nccl"  # NCCL wins there: the auto choice uses it and says so
    assert big.baseline("nccl").ratio == pytest.approx(1.0)
    assert any("NCCL is faster" in n for n in big.notes)
    assert big.baseline("torch_symm_mem").status == "skipped" and "unavailable" in big.baseline("torch_symm_mem").reason
    fused = verify_packet(paths[1]).params["fused_residual_rmsnorm"]
    assert fused["fused_over_plain"] == pytest.approx(1.1)


def test_table_has_the_rccl_tests_columns() -> None:
    proc, link, _ = _synthetic()
    rows = B.build_rows("process", proc, proc, link, 2)
    t = B.table_rows(rows, "bfloat16")
    assert B.HEADERS[:10] == ["mode", "size(B)", "count", "type", "redop", "algo", "time(us)", "algbw(GB/s)",
                              "busbw(GB/s)", "#wrong"]
    assert t[0][1] == 1024 and t[0][2] == 512 and t[0][9] == 0
    assert float(t[0][8]) == pytest.approx(1024 / 3.1e-6 / 1e9 * 2 * 1 / 2, rel=1e-2)
    assert "<svg" in B.plot_svg(rows)


def _thread_result(proc: dict, available: bool) -> dict:
    """Thread mode's result shaped like run_thread_mode's: its own single-thread NCCL at 8 MB when available."""
    import copy

    th = copy.deepcopy({k: proc[k] for k in ("floor", "ours", "fused", "kernel")})
    for s in th["ours"]:
        if s["size_bytes"] == 8 << 20:
            if available:
                s["ours"]["nccl"] = {"graph": [7.0, 7.2, 7.1], "eager": [40.0], "err": 0.3}
            else:
                s["auto"] = "twoshot"
    th["thread_nccl"] = {"available": available, "reason": None if available else "CuPy's NCCL binding is not "
                         "importable (test)", "version": 22809 if available else None, "method": B.THREAD_NCCL_METHOD}
    return th


@pytest.mark.parametrize("available", [True, False])
def test_thread_mode_rows_use_their_own_nccl_or_say_why_not(tmp_path, available) -> None:
    """Thread mode's hand-off is timed in thread mode (single-thread NCCL), never borrowed from process
    mode; without it the automatic choice falls back to two-shot and every thread packet says why."""
    from floorline.evidence.store import verify_packet

    proc, link, _ = _synthetic()
    th = _thread_result(proc, available)
    cfg = B.BenchConfig(world=2, modes=("thread",), sizes=(1024, 8192, 8 << 20))
    rows = B.build_rows("thread", th, proc, link, 2)
    big = rows[2]
    if available:
        assert big.algorithm == "nccl" and big.graph_us == pytest.approx(7.1)  # not process mode's 10.5
        assert big.vs_nccl == pytest.approx(10.5 / 7.1)
    else:
        assert big.algorithm == "twoshot" and big.graph_us == pytest.approx(5.05)
    paths = B.write_packets(rows, {"thread": th}, proc, link, cfg, tmp_path)
    pk = verify_packet(paths[2])
    assert pk.params["algorithm"] == big.algorithm
    if available:
        assert "nccl" in pk.params["algorithms"] and any("ncclCommInitAll" in n for n in pk.notes)
    else:
        assert all(any("falls back to two-shot" in n for n in verify_packet(p).notes) for p in paths)


# ---- opt-in variants and --tune-crossover (next measurement round) ----------------------------------
@pytest.mark.parametrize("args,needle", [(["--variants", "turbo"], "--variants"), (["--sizes", "16Q"], "--sizes"),
                                         (["--sizes", "512"], "--sizes"), (["--sizes", "128M"], "--sizes")])
def test_bad_variant_or_size_is_one_line_exit_2(args, needle) -> None:
    p = subprocess.run([sys.executable, "-m", "floorline", "bench", "allreduce", *args], capture_output=True, text=True)
    assert p.returncode == 2 and needle in p.stderr and "Traceback" not in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1


def test_parse_sizes() -> None:
    assert B.parse_sizes("16K,1K,1M,32M,1K") == (1 << 10, 16 << 10, 1 << 20, 32 << 20)
    assert B.parse_sizes("4096") == (4096,)


def test_variant_timings_go_into_params_but_not_into_the_default_timing(tmp_path) -> None:
    """A variant measured next to the default is recorded per algorithm; the packet's timing, algorithm and
    pass/fail stay the default's, and a variant's wrong sum is named in the notes."""
    from floorline.evidence.store import verify_packet

    proc, link, by_mode = _synthetic()
    for s in proc["ours"]:
        s["ours"]["oneshot@replicated"] = {"graph": [2.5, 2.6], "eager": [19.0], "err": 0.4 if s["n"] < 4096 else 9.0}
    proc["fused"]["light"], proc["fused"]["light_err"] = [3.1, 3.2], 0.5
    proc["fused"]["block"], proc["fused"]["block_err"] = [4.4, 4.5], 0.3
    proc["kernel"]["variant_attributes"] = {"oneshot@replicated": {"registers": 47}}
    cfg = B.BenchConfig(world=2, modes=("process",), sizes=(1024, 8192, 8 << 20), variants=B.VARIANTS)
    rows = B.build_rows("process", proc, proc, link, 2)
    paths = B.write_packets(rows, by_mode, proc, link, cfg, tmp_path)
    first, second = verify_packet(paths[0]), verify_packet(paths[1])
    assert first.timing.median == pytest.approx(3.1) and first.params["algorithm"] == "oneshot"
    assert first.params["algorithms"]["oneshot@replicated"]["graph_us"] == pytest.approx(2.55)
    assert first.status == "passed" and not any("WRONG" in n for n in first.notes)
    assert second.status == "passed" and any("oneshot@replicated gave a WRONG sum" in n for n in second.notes)
    fu = second.params["fused_residual_rmsnorm"]
    assert fu["light_over_plain"] == pytest.approx(3.15 / 3.0) and fu["light_err"] == 0.5
    assert fu["block_over_plain"] == pytest.approx(4.45 / 3.0) and fu["block_err"] == 0.3
    assert fu["variant"].startswith("split")
    assert first.params["variant_kernel_attributes"]["oneshot@replicated"]["registers"] == 47


def test_derive_crossover_follows_the_measured_winners() -> None:
    pts = [{"size": 1 << 20, "oneshot": 7.0, "twoshot": 8.0, "nccl": 20.0},
           {"size": 2 << 20, "oneshot": 11.0, "twoshot": 12.0, "nccl": 25.0},
           {"size": 4 << 20, "oneshot": 19.0, "twoshot": 18.0, "nccl": 30.0},
           {"size": 32 << 20, "oneshot": 270.0, "twoshot": 135.5, "nccl": 142.0},
           {"size": 64 << 20, "oneshot": None, "twoshot": 264.0, "nccl": 251.5}]
    d = B.derive_crossover(pts)
    assert d["oneshot_max_bytes"] == 2 << 20 and d["twoshot_max_bytes"] == 32 << 20
    assert any("NCCL from 67108864" in e for e in d["evidence"])
    # NCCL not measured (thread mode without a hand-off): the kernels keep every size
    d = B.derive_crossover([{**p, "nccl": None} for p in pts])
    assert d["twoshot_max_bytes"] == 64 << 20
    # one-shot slower from the first size on: no one-shot range
    assert B.derive_crossover([{"size": 1024, "oneshot": 5.0, "twoshot": 4.0, "nccl": 9.0}])["oneshot_max_bytes"] == 0


def test_candidate_file_round_trips_through_the_library_choice(tmp_path) -> None:
    """The candidate file has crossover.toml's schema; thread mode gets its own sub-table, which
    choice.crossover(world, path, 'thread') and a CommConfig(crossover_file=...) pick up; the library's
    own table is untouched."""
    from pathlib import Path

    from floorline.comm import CommConfig, choice

    proc, link, _ = _synthetic()
    proc["ours"][2]["ours"]["oneshot"]["graph"] = [9.0]  # two-shot (5.05) wins at 8 MB
    th = _thread_result(proc, True)
    th["thread_nccl"]["graph_us"] = {8 << 20: 4.0}  # thread NCCL beats two-shot (5.05) at 8 MB
    cfg = B.BenchConfig(world=2, sizes=(1024, 8192, 8 << 20), tune_crossover=True)
    path, derived = B.write_candidate({"process": proc, "thread": th}, proc, cfg, tmp_path)
    assert path == tmp_path / B.CANDIDATE_FILE
    assert derived["process"] == {**derived["process"], "oneshot_max_bytes": 8192, "twoshot_max_bytes": 8 << 20}
    assert derived["thread"]["twoshot_max_bytes"] == 8192  # its own NCCL (4.0) beats two-shot (5.05)
    p, t = choice.crossover(2, Path(path)), choice.crossover(2, Path(path), "thread")
    assert (p.oneshot_max_bytes, p.twoshot_max_bytes) == (8192, 8 << 20)
    assert (t.oneshot_max_bytes, t.twoshot_max_bytes) == (8192, 8192)
    assert choice.choose(8 << 20, 2, True, t) == "nccl" and choice.choose(8 << 20, 2, True, p) == "twoshot"
    assert "thread mode" in t.source and "NOT adopted" in path.read_text()
    assert choice.crossover(2).source.startswith("measured on nvidia-h200-x2")  # default table unchanged
    CommConfig(crossover_file=str(path))
    from floorline.errors import InputError

    with pytest.raises(InputError, match="crossover_file"):
        CommConfig(crossover_file=str(tmp_path / "missing.toml"))
    with pytest.raises(InputError, match="epoch"):
        CommConfig(epoch="atomic")
    with pytest.raises(InputError, match="block_threads"):
        CommConfig(block_threads=100)
    assert B._make_comm_config(cfg, "replicated_t128").block_threads == 128
    assert B._make_comm_config(cfg, "ticket").epoch == "ticket" and B._make_comm_config(cfg, "ticket").block_threads == 512
    # the defaults since round A: replicated epochs, block threads by size
    assert B._make_comm_config(cfg).epoch == "replicated" and B._make_comm_config(cfg).block_threads == 0


def test_world_8_packets_and_floor(tmp_path) -> None:
    """Issue 9's run writes the same packets at world 8: world recorded, the floor counts the 7 peers' bytes,
    bus bandwidth uses 2 (w - 1) / w, and the file names carry w8 (no clash with the world-2 packets)."""
    from floorline.evidence.store import verify_packet

    proc, link, by_mode = _synthetic(8)
    cfg = B.BenchConfig(world=8, modes=("process",), sizes=(1024, 8192, 8 << 20))
    rows = B.build_rows("process", proc, proc, link, 8)
    paths = B.write_packets(rows, by_mode, proc, link, cfg, tmp_path)
    assert len(paths) == 3 and all("-w8-" in p.name for p in paths)
    big = next(r for r in rows if r.size_bytes == 8 << 20)
    assert big.floor_us == pytest.approx(1.0 + 1.0 + 7 * (8 << 20) / (400.0 * 1e3))
    assert big.busbw_gbps == pytest.approx(big.algbw_gbps * 2 * 7 / 8)
    for p in paths:
        pk = verify_packet(p)
        assert pk.params["world"] == 8 and pk.kind == "bench.allreduce"


def test_world_8_comm_config_sizes_its_region() -> None:
    """--world 8 makes a communicator whose one-shot slots carry the [default] crossover's range and whose
    two-shot carries the bench's largest message."""
    from floorline.comm import choice, protocol

    cfg = B.BenchConfig(world=8, sizes=(1024, 64 << 20))
    cc = B._make_comm_config(cfg)
    lay = protocol.layout_for(8, cc.max_bytes, cc.oneshot_max_bytes, protocol.ctrl_bytes_for(cc.epoch))
    assert lay.fits("twoshot", (64 << 20) // 2, 2)
    assert lay.fits("oneshot", choice.crossover(8).oneshot_max_bytes // 2, 2)
