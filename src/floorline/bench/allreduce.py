"""`floorline bench allreduce`: our push all-reduce vs NCCL (fastest configuration found) vs torch
symmetric memory vs the fabric floor, all measured in one run, in process mode and thread mode.

Per size (1 KB .. 64 MB, bf16): per-op latency replayed from a CUDA graph (the number decode pays) and
eager (launch + synchronize, wall clock), bus bandwidth, correctness against a float64 sum. The floor
is measured in the same run: a GPU<->GPU flag ping-pong gives the one-way NVLink latency, a graph of
empty kernels gives one graph kernel slot, a peer copy gives the link bandwidth.

One `bench.allreduce` packet per (mode, size): timing is the automatic choice's graph latency.
"""

from __future__ import annotations

import json
import os
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

KIND = "bench.allreduce"
SIZES = tuple(1 << k for k in range(10, 27))  # 1 KB .. 64 MB
QUICK_SIZES = (1 << 10, 8 << 10, 64 << 10, 1 << 20)
FUSED_HIDDEN = 4096
# |out - ref| <= rel * |ref| + abs: the fp32 sum is rounded once to the I/O dtype (half an ulp), so one
# ulp of relative slack is generous but still catches a lost or stale contribution.
TOLERANCE = {"bfloat16": (2.0**-7, 1e-6), "float16": (2.0**-10, 1e-6), "float32": (2.0**-20, 1e-6)}
NCCL_ENV_VARIANTS = ("NCCL_PROTO=LL", "NCCL_PROTO=LL128")
# Kernel variants measured next to the defaults in the same run (the defaults stay what the automatic choice
# and the packets' timing use; defaults since round A: replicated epochs, block threads by size, split fused
# kernel): "ticket" = one-shot and two-shot on a communicator with the run-3 configuration (ticket epochs,
# 512-thread blocks; keys "oneshot@ticket", "twoshot@ticket"); "replicated" / "replicated_t128" = replicated
# epochs with blocks fixed at 512 / 128 threads; "fused_block" / "fused_light" / "fused_cluster" =
# all_reduce_residual_rmsnorm(variant="block" / "light" / "cluster") next to the default (split) fused kernel.
VARIANT_COMM = {"ticket": {"epoch": "ticket", "block_threads": 512},
                "replicated": {"epoch": "replicated", "block_threads": 512},
                "replicated_t128": {"epoch": "replicated", "block_threads": 128}}
FUSED_VARIANTS = ("fused_block", "fused_light", "fused_cluster")
VARIANTS = (*VARIANT_COMM, *FUSED_VARIANTS)
CANDIDATE_FILE = "crossover-candidate.toml"


def parse_sizes(text: str) -> tuple[int, ...]:
    """'1K,16K,1M,32M' -> bytes (K/M = 2^10/2^20; plain numbers are bytes), each 1 KB .. 64 MB and a
    multiple of 4 bytes (every dtype's element)."""
    from floorline.errors import InputError

    out = []
    for part in (p.strip() for p in text.split(",")):
        mult = {"K": 1 << 10, "M": 1 << 20}.get(part[-1:].upper(), 1)
        digits = part[:-1] if mult > 1 else part
        if not digits.isdigit():
            raise InputError(f"--sizes: each size must be a number with optional K or M (e.g. 16K), got {part!r}")
        v = int(digits) * mult
        if not (1 << 10) <= v <= (64 << 20) or v % 4:
            raise InputError(f"--sizes: each size must be 1K..64M bytes and a multiple of 4, got {part!r}")
        out.append(v)
    return tuple(sorted(set(out)))


@dataclass(frozen=True)
class BenchConfig:
    world: int = 2
    modes: tuple[str, ...] = ("process", "thread")
    sizes: tuple[int, ...] = SIZES
    dtype: str = "bfloat16"
    iters: int = 30
    eager_iters: int = 200
    pingpong_rounds: int = 20000
    timeout_s: float = 10.0
    nccl_variants: tuple[str, ...] = NCCL_ENV_VARIANTS
    seed: int = 1234
    variants: tuple[str, ...] = ()  # from VARIANTS
    tune_crossover: bool = False  # also time thread mode's NCCL above the one-shot range; write CANDIDATE_FILE


# ---------------------------------------------------------------------------------------------
# reference
def rank_input(n: int, rank: int, seed: int, dtype: Any, device: Any) -> Any:
    """Rank `rank`'s input, reproducible on any GPU (so every rank can rebuild everyone's inputs)."""
    import torch

    g = torch.Generator(device=device)
    g.manual_seed(seed * 1000 + rank)
    return torch.randn(n, generator=g, device=device, dtype=torch.float32).to(dtype)


def reference_sum(n: int, world: int, seed: int, dtype: Any, device: Any) -> Any:
    import torch

    ref = torch.zeros(n, dtype=torch.float64, device=device)
    for r in range(world):
        ref += rank_input(n, r, seed, dtype, device).double()
    return ref


def error_ratio(out: Any, ref: Any, dtype_name: str) -> float:
    """max |out - ref| / (rel * |ref| + abs): <= 1 passes. NaN in out (a poisoned or stale element) fails."""
    import torch

    rel, ab = TOLERANCE[dtype_name]
    o = out.double()
    if not torch.isfinite(o).all():
        return float("inf")
    return float(((o - ref).abs() / (rel * ref.abs() + ab)).max())


# ---------------------------------------------------------------------------------------------
# timing across the ranks this process drives
@dataclass
class Local:
    """The ranks this host thread drives (all of them in thread mode, one in process mode)."""

    ranks: list[int]
    devices: list[int]
    world: int
    gather: Callable[[Any], list[Any]]  # every rank's object, in rank order (one per process)
    barrier: Callable[[], None]
    timeout_s: float = 60.0


def _spin_sync(devices: list[int], timeout_s: float) -> None:
    import torch

    from floorline.comm.errors import CommTimeout

    evs = []
    for d in devices:
        ev = torch.cuda.Event()
        ev.record(torch.cuda.current_stream(d))
        evs.append(ev)
    deadline = time.monotonic() + timeout_s
    for ev in evs:
        spins = 0
        while not ev.query():
            spins += 1
            if spins % 1024 == 0 and time.monotonic() > deadline:
                raise CommTimeout(f"GPU work did not finish within {timeout_s:g} s (a peer stalled?)")


def _combine(local: Local, per_local: list[list[float]]) -> list[float]:
    """Per iteration, the slowest rank: an all-reduce is done when the last rank has its result."""
    mine = [max(vals) for vals in zip(*per_local, strict=True)]
    every = local.gather(mine)
    return [max(vals) for vals in zip(*every, strict=True)]


def capture_all(local: Local, op: Callable[[int, int], None], n_ops: int) -> list[Any]:
    """One graph per local GPU, all captured at the same time: for ops that launch on every GPU from one
    call (single-thread NCCL issues its group when the last rank calls). Relaxed capture mode, so one
    capture in progress does not forbid the other's setup calls."""
    import contextlib

    import torch

    for d in local.devices:
        torch.cuda.synchronize(d)
    graphs = [torch.cuda.CUDAGraph() for _ in local.devices]
    streams = [torch.cuda.Stream(d) for d in local.devices]
    errors: list[BaseException] = []
    with contextlib.ExitStack() as stack:
        for g, s, d in zip(graphs, streams, local.devices, strict=True):
            stack.enter_context(torch.cuda.stream(s))  # current stream of GPU d is its capture stream
            with torch.cuda.device(d):
                g.capture_begin(capture_error_mode="relaxed")
        try:
            for i in range(n_ops):
                for r, d in zip(local.ranks, local.devices, strict=True):
                    with torch.cuda.device(d):
                        op(r, i)
        except BaseException as e:  # noqa: BLE001 - end every capture before raising
            errors.append(e)
        for g, d in zip(graphs, local.devices, strict=True):
            try:
                with torch.cuda.device(d):
                    g.capture_end()
            except BaseException as e:  # noqa: BLE001
                errors.append(e)
    if errors:
        raise errors[0]
    return graphs


def time_graph(local: Local, op: Callable[[int, int], None], n_ops: int, iters: int,
               concurrent: bool = False) -> list[float]:
    """Per-op µs from CUDA-graph replays of n_ops back-to-back ops (op(rank, i)). concurrent: capture every
    GPU's graph at once (see capture_all) instead of one after the other."""
    import torch

    for i in range(3):
        for r, d in zip(local.ranks, local.devices, strict=True):
            with torch.cuda.device(d):
                op(r, i)
    _spin_sync(local.devices, local.timeout_s)
    graphs = []
    if concurrent:
        graphs = capture_all(local, op, n_ops)
    for r, d in zip(local.ranks, local.devices, strict=True) if not concurrent else ():
        with torch.cuda.device(d):
            g = torch.cuda.CUDAGraph()
            # an explicit capture stream per device: torch's default capture stream is created once, on
            # whichever device came first, and capturing another device's work on it breaks the capture
            with torch.cuda.graph(g, stream=torch.cuda.Stream(d)):
                for i in range(n_ops):
                    op(r, i)
            graphs.append(g)
    local.barrier()
    for g, d in zip(graphs, local.devices, strict=True):
        with torch.cuda.device(d):
            g.replay()
    _spin_sync(local.devices, local.timeout_s)
    local.barrier()
    starts = [[torch.cuda.Event(enable_timing=True) for _ in range(iters)] for _ in graphs]
    ends = [[torch.cuda.Event(enable_timing=True) for _ in range(iters)] for _ in graphs]
    for it in range(iters):
        for k, (g, d) in enumerate(zip(graphs, local.devices, strict=True)):
            with torch.cuda.device(d):
                s = torch.cuda.current_stream(d)
                starts[k][it].record(s)
                g.replay()
                ends[k][it].record(s)
    _spin_sync(local.devices, local.timeout_s)
    per = [[starts[k][i].elapsed_time(ends[k][i]) * 1e3 / n_ops for i in range(iters)] for k in range(len(graphs))]
    del graphs
    return _combine(local, per)


def time_eager(local: Local, op: Callable[[int, int], None], iters: int) -> list[float]:
    """Wall-clock µs per op: launch on every local rank, then synchronize (what an unguarded caller pays)."""
    import torch

    for i in range(3):
        for r, d in zip(local.ranks, local.devices, strict=True):
            with torch.cuda.device(d):
                op(r, i)
    _spin_sync(local.devices, local.timeout_s)
    local.barrier()
    samples = []
    for it in range(iters):
        t0 = time.perf_counter()
        for r, d in zip(local.ranks, local.devices, strict=True):
            with torch.cuda.device(d):
                op(r, it)
        _spin_sync(local.devices, local.timeout_s)
        samples.append((time.perf_counter() - t0) * 1e6)
    return _combine(local, [samples])


def n_ops_for(size: int) -> int:
    return 100 if size <= (1 << 20) else 20 if size <= (8 << 20) else 5


# ---------------------------------------------------------------------------------------------
# one mode's measurements
@dataclass
class SizeResult:
    size_bytes: int
    n: int
    ours: dict[str, dict[str, Any]] = field(default_factory=dict)  # algorithm -> {graph, eager, err}
    auto: str = ""
    nccl: dict[str, Any] = field(default_factory=dict)  # config -> graph samples (+ eager, err)
    symm: dict[str, Any] = field(default_factory=dict)


def measure_floor(local: Local, comms: dict[int, Any], rounds: int) -> dict[str, Any]:
    """One-way latency (ping-pong between ranks 0 and 1) and one graph kernel slot (empty kernels)."""
    import torch

    local.barrier()
    ev = {}
    for r, d in zip(local.ranks, local.devices, strict=True):
        if r > 1:
            continue
        with torch.cuda.device(d):
            s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            s.record()
            comms[r].launch_pingpong(peer=1 - r, role=r, rounds=rounds)
            e.record()
            ev[r] = (s, e)
    _spin_sync(local.devices, local.timeout_s)
    for r in ev:
        comms[r].check()
    mine = {r: s.elapsed_time(e) * 1e3 for r, (s, e) in ev.items()}
    every = local.gather(mine)
    rt = [v for m in every for v in m.values()]
    one_way = min(rt) / (2 * rounds)  # the initiator's kernel spans every round trip; skew only adds
    # empty kernels: the probe kernel with 0 rounds returns at once
    def empty(r: int, i: int) -> None:
        comms[r].launch_pingpong(peer=(r + 1) % local.world, role=1, rounds=0)

    slot = statistics.median(time_graph(local, empty, 200, 20))
    return {"one_way_us": one_way, "round_trips": rounds, "kernel_slot_us": slot, "pingpong_kernel_us": rt}


def measure_ours(local: Local, comms: dict[int, Any], sizes: tuple[int, ...], cfg: BenchConfig,
                 progress: Callable[[str], None], variant_comms: dict[str, dict[int, Any]] | None = None
                 ) -> list[SizeResult]:
    """Every size with one-shot and two-shot (and, per opt-in epoch variant, the same two algorithms on that
    variant's communicator, keyed "<algorithm>@<variant>")."""
    import torch

    from floorline.comm import protocol

    dtype = getattr(torch, cfg.dtype)
    eb = protocol.ELEM_BYTES[cfg.dtype]
    results = []
    for size in sizes:
        n = size // eb
        res = SizeResult(size_bytes=size, n=n)
        xs, outs = {}, {}
        for r, d in zip(local.ranks, local.devices, strict=True):
            xs[r] = rank_input(n, r, cfg.seed + size, dtype, f"cuda:{d}")
            outs[r] = torch.empty_like(xs[r])
        any_comm = comms[local.ranks[0]]
        res.auto = any_comm.choose(size)
        plan = [(alg, alg, comms) for alg in ("oneshot", "twoshot")]
        plan += [(f"{alg}@{v}", alg, vc) for v, vc in (variant_comms or {}).items() for alg in ("oneshot", "twoshot")]
        for key, alg, cs in plan:
            if not cs[local.ranks[0]].layout.fits(alg, n, eb):
                continue
            progress(f"{any_comm.mode}: ours {key} {size} B")
            for r in local.ranks:
                outs[r].fill_(float("nan"))

            def op(r: int, i: int, alg: str = alg, xs: dict = xs, outs: dict = outs, cs: dict = cs) -> None:
                cs[r].all_reduce(xs[r], out=outs[r], algorithm=alg)

            for r, d in zip(local.ranks, local.devices, strict=True):
                with torch.cuda.device(d):
                    op(r, 0)
            _spin_sync(local.devices, local.timeout_s)
            for r in local.ranks:
                cs[r].check()
            errs = {r: error_ratio(outs[r], reference_sum(n, local.world, cfg.seed + size, dtype, outs[r].device),
                                   cfg.dtype) for r in local.ranks}
            err = max(v for m in local.gather(errs) for v in m.values())
            graph = time_graph(local, op, n_ops_for(size), cfg.iters)
            eager = time_eager(local, op, cfg.eager_iters if size <= (1 << 20) else 20)
            for r in local.ranks:
                cs[r].check()
            res.ours[key] = {"graph": graph, "eager": eager, "err": err}
        results.append(res)
    return results


def measure_fused(local: Local, comms: dict[int, Any], cfg: BenchConfig) -> dict[str, Any]:
    """Fused AR + residual + RMSNorm vs the plain all-reduce of the same bytes (hidden 4096, 1 token)."""
    import torch

    dtype = getattr(torch, cfg.dtype)
    h = FUSED_HIDDEN
    t: dict[str, dict[int, Any]] = {"x": {}, "res": {}, "w": {}, "out": {}, "rout": {}, "plain": {}}
    for r, d in zip(local.ranks, local.devices, strict=True):
        dev = f"cuda:{d}"
        t["x"][r] = rank_input(h, r, cfg.seed, dtype, dev).view(1, h)
        t["res"][r] = rank_input(h, 100, cfg.seed, dtype, dev).view(1, h)
        t["w"][r] = (rank_input(h, 200, cfg.seed, torch.float32, dev).abs() + 0.5).to(dtype)
        t["out"][r] = torch.full_like(t["x"][r], float("nan"))
        t["rout"][r] = torch.full_like(t["x"][r], float("nan"))
        t["plain"][r] = torch.empty_like(t["x"][r])

    def fused(r: int, i: int, variant: str = "default") -> None:
        comms[r].all_reduce_residual_rmsnorm(t["x"][r], t["res"][r], t["w"][r], 1e-6, out=t["out"][r],
                                             residual_out=t["rout"][r], variant=variant)

    def plain(r: int, i: int) -> None:
        comms[r].all_reduce(t["x"][r], out=t["plain"][r], algorithm="oneshot")

    def unfused(r: int, i: int) -> None:  # our all-reduce, then torch's add and rms_norm: the 3-kernel path
        y = comms[r].all_reduce(t["x"][r], out=t["plain"][r], algorithm="oneshot")
        hsum = y + t["res"][r]
        torch.nn.functional.rms_norm(hsum.float(), (h,), t["w"][r].float(), 1e-6).to(dtype)

    def check(op: Callable[[int, int], None]) -> float:
        for r in local.ranks:
            t["out"][r].fill_(float("nan"))
            t["rout"][r].fill_(float("nan"))
        for r, d in zip(local.ranks, local.devices, strict=True):
            with torch.cuda.device(d):
                op(r, 0)
        _spin_sync(local.devices, local.timeout_s)
        errs = {}
        for r in local.ranks:
            comms[r].check()
            dev = t["x"][r].device
            s = reference_sum(h, local.world, cfg.seed, dtype, dev) + t["res"][r].double().view(-1)
            hr = s.to(dtype).double()
            ref = hr * torch.rsqrt((hr * hr).mean() + 1e-6) * t["w"][r].double()
            errs[r] = max(error_ratio(t["rout"][r].view(-1), s, cfg.dtype),
                          error_ratio(t["out"][r].view(-1), ref, cfg.dtype) / 2)
        return max(v for m in local.gather(errs) for v in m.values())

    names = [v.removeprefix("fused_") for v in FUSED_VARIANTS if v in cfg.variants]
    result: dict[str, Any] = {"hidden": h, "tokens": 1}
    if "cluster" in names:  # opt-in and sm_90+: where a rank cannot set it up, the run goes on without it
        whys = [w for m in local.gather({r: comms[r].cluster_unavailable for r in local.ranks}) for w in m.values()
                if w]
        if whys:
            names.remove("cluster")
            result["cluster_unavailable"] = whys[0]
    others = {k: (lambda r, i, k=k: fused(r, i, k)) for k in names}
    result["err"] = check(fused)
    for k, op in others.items():
        result[f"{k}_err"] = check(op)
    result["fused"] = time_graph(local, fused, 100, cfg.iters)
    for k, op in others.items():
        result[k] = time_graph(local, op, 100, cfg.iters)
    result["plain"] = time_graph(local, plain, 100, cfg.iters)
    result["unfused"] = time_graph(local, unfused, 100, cfg.iters)
    return result


# ---------------------------------------------------------------------------------------------
# baselines (process mode only: they need a process group)
def measure_nccl(local: Local, sizes: tuple[int, ...], cfg: BenchConfig, label: str, try_registered: bool,
                 progress: Callable[[str], None]) -> dict[int, dict[str, Any]]:
    import torch
    import torch.distributed as dist

    dtype = getattr(torch, cfg.dtype)
    eb = torch.finfo(dtype).bits // 8
    d = local.devices[0]
    r = local.ranks[0]
    pools: dict[str, Any] = {"default": None}
    notes: dict[str, str] = {}
    if try_registered:
        try:
            backend = dist.group.WORLD._get_backend(torch.device("cuda", d))
            pool = torch.cuda.MemPool(backend.mem_allocator)
            backend.register_mem_pool(pool)
            pools["registered_mempool"] = (pool, backend)
        except Exception as e:  # noqa: BLE001 - recorded, not fatal
            notes["registered_mempool"] = f"unavailable: {type(e).__name__}: {e}"[:300]
    out: dict[int, dict[str, Any]] = {}
    for size in sizes:
        n = size // eb
        out[size] = {"configs": {}, "notes": dict(notes)}
        for name, pool in pools.items():
            progress(f"process: NCCL {label}/{name} {size} B")
            if pool is None:
                x = rank_input(n, r, cfg.seed + size, dtype, f"cuda:{d}")
                buf = torch.empty_like(x)
            else:
                with torch.cuda.use_mem_pool(pool[0]):
                    x = rank_input(n, r, cfg.seed + size, dtype, f"cuda:{d}")
                    buf = torch.empty_like(x)
                try:
                    pool[1].register_mem_pool(pool[0])
                except Exception:  # noqa: BLE001 - already registered segments are fine
                    pass

            def op(rank: int, i: int, buf: Any = buf) -> None:
                dist.all_reduce(buf)  # in place, no copy in the timed op (values overflow harmlessly)

            try:
                buf.copy_(x)
                op(r, 0)
                _spin_sync(local.devices, local.timeout_s)
                err = error_ratio(buf, reference_sum(n, local.world, cfg.seed + size, dtype, buf.device), cfg.dtype)
                graph = time_graph(local, op, n_ops_for(size), cfg.iters)
                eager = time_eager(local, op, 100 if size <= (1 << 20) else 20)
                out[size]["configs"][f"{label}/{name}"] = {"graph": graph, "eager": eager, "err": err}
            except Exception as e:  # noqa: BLE001 - a config that fails is recorded, the others still count
                out[size]["notes"][f"{label}/{name}"] = f"failed: {type(e).__name__}: {e}"[:300]
    return out


def measure_symm_mem(local: Local, sizes: tuple[int, ...], cfg: BenchConfig,
                     progress: Callable[[str], None]) -> dict[int, dict[str, Any]]:
    import torch
    import torch.distributed as dist

    dtype = getattr(torch, cfg.dtype)
    eb = torch.finfo(dtype).bits // 8
    d, r = local.devices[0], local.ranks[0]
    out: dict[int, dict[str, Any]] = {}
    try:
        import torch.distributed._symmetric_memory as symm_mem

        group_name = dist.group.WORLD.group_name
        enable = getattr(symm_mem, "enable_symm_mem_for_group", None)
        if enable is not None:  # needed before torch 2.8, a deprecated no-op after
            import warnings

            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)
                enable(group_name)
        cap = max(sizes) // eb
        buf = symm_mem.empty(cap, dtype=dtype, device=f"cuda:{d}")
        symm_mem.rendezvous(buf, group_name)
        fn = torch.ops.symm_mem.one_shot_all_reduce
    except Exception as e:  # noqa: BLE001 - the reason goes into every packet's baseline entry
        reason = f"torch symmetric memory unavailable: {type(e).__name__}: {e}"[:300]
        return {s: {"reason": reason} for s in sizes}
    for size in sizes:
        n = size // eb
        progress(f"process: torch symm_mem one_shot_all_reduce {size} B")
        x = buf[:n]
        x.copy_(rank_input(n, r, cfg.seed + size, dtype, f"cuda:{d}"))
        res: dict[str, Any] = {}

        def op(rank: int, i: int, x: Any = x, res: dict = res) -> None:
            res["y"] = fn(x, "sum", group_name)

        try:
            op(r, 0)
            _spin_sync(local.devices, local.timeout_s)
            err = error_ratio(res["y"], reference_sum(n, local.world, cfg.seed + size, dtype, x.device), cfg.dtype)
            entry: dict[str, Any] = {"err": err, "eager": time_eager(local, op, 100 if size <= (1 << 20) else 20)}
            try:
                entry["graph"] = time_graph(local, op, n_ops_for(size), cfg.iters)
            except Exception as e:  # noqa: BLE001
                entry["graph_reason"] = f"graph capture failed: {type(e).__name__}: {e}"[:300]
            out[size] = entry
        except Exception as e:  # noqa: BLE001
            out[size] = {"reason": f"one_shot_all_reduce failed: {type(e).__name__}: {e}"[:300]}
    return out


# ---------------------------------------------------------------------------------------------
# drivers
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _make_comm_config(cfg: BenchConfig, variant: str = "") -> Any:
    from floorline.comm import CommConfig

    top = max(cfg.sizes)
    return CommConfig(max_bytes=max(top, 1 << 20), oneshot_max_bytes=max(top, 1 << 20) if cfg.world == 2 else 8 << 20,
                      timeout_s=cfg.timeout_s, **VARIANT_COMM.get(variant, {}))


def _kernel_info(comm: Any, cfg: BenchConfig, vcomms: dict[str, dict[int, Any]]) -> dict[str, Any]:
    from floorline.comm import cuda_api, protocol

    eb = protocol.ELEM_BYTES[cfg.dtype]
    info = {"attributes": comm.kernel_attributes("oneshot", cfg.dtype), "nvrtc": cuda_api.nvrtc_version(),
            "arch": comm.arch, "crossover": asdict(comm.crossover), "epoch_scheme": comm.config.epoch,
            # threads per block the default communicator launches one-shot/two-shot with, per size
            "block_threads": {str(s): comm.threads_for(protocol.packets(s // eb, eb)) for s in cfg.sizes}}
    variants = {f"{a}@{v}": next(iter(vc.values())).kernel_attributes(a, cfg.dtype)
                for v, vc in vcomms.items() for a in ("oneshot", "twoshot")}
    for v in FUSED_VARIANTS:
        if v in cfg.variants and (v != "fused_cluster" or comm.has_clusters):
            variants[v] = comm.kernel_attributes("fused" if v == "fused_block" else v, cfg.dtype)
    info["fused_attributes"] = comm.kernel_attributes("fused_split", cfg.dtype)
    if variants:
        info["variant_attributes"] = variants
    return info


def _process_worker(rank: int, cfg: BenchConfig, port: int, result_path: str, nccl_only: str | None) -> None:
    os.environ.setdefault("NCCL_NVLS_ENABLE", "0")
    os.environ.setdefault("TORCH_SYMM_MEM_DISABLE_MULTICAST", "1")
    os.environ.setdefault("NVSHMEM_DISABLE_NVLS", "1")
    if nccl_only:
        k, v = nccl_only.split("=", 1)
        os.environ[k] = v
    import torch
    import torch.distributed as dist

    torch.cuda.set_device(rank)
    dist.init_process_group("cpu:gloo,cuda:nccl", init_method=f"tcp://127.0.0.1:{port}", rank=rank,
                            world_size=cfg.world, device_id=torch.device("cuda", rank))
    gloo = dist.new_group(backend="gloo")

    def gather(obj: Any) -> list[Any]:
        out: list[Any] = [None] * cfg.world
        dist.all_gather_object(out, obj, group=gloo)
        return out

    local = Local([rank], [rank], cfg.world, gather, lambda: dist.barrier(group=gloo), timeout_s=cfg.timeout_s * 6)

    def progress(msg: str) -> None:
        if rank == 0:  # stderr: stdout stays clean for --json
            print(f"  {msg}", file=sys.stderr, flush=True)

    result: dict[str, Any] = {}
    if nccl_only:
        result["nccl"] = measure_nccl(local, cfg.sizes, cfg, nccl_only, False, progress)
    else:
        from floorline.comm import init_process

        comm = init_process(group=gloo, config=_make_comm_config(cfg), nccl_group=dist.group.WORLD)
        comms = {rank: comm}
        # each variant on its own communicator (its own region: the two epoch schemes cannot share one)
        vcomms = {v: {rank: init_process(group=gloo, config=_make_comm_config(cfg, v))}
                  for v in VARIANT_COMM if v in cfg.variants}
        result["floor"] = measure_floor(local, comms, cfg.pingpong_rounds)
        result["ours"] = [asdict(s) for s in measure_ours(local, comms, cfg.sizes, cfg, progress, vcomms)]
        result["fused"] = measure_fused(local, comms, cfg)
        result["nccl"] = measure_nccl(local, cfg.sizes, cfg, "default", True, progress)
        result["symm"] = measure_symm_mem(local, cfg.sizes, cfg, progress)
        result["kernel"] = _kernel_info(comm, cfg, vcomms)
        for vc in vcomms.values():
            vc[rank].close()
        comm.close()
    if rank == 0:
        Path(result_path).write_text(json.dumps(result))
    dist.barrier(group=gloo)
    dist.destroy_process_group()


def run_process_mode(cfg: BenchConfig, progress: Callable[[str], None]) -> dict[str, Any]:
    import torch.multiprocessing as mp

    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "main.json")
        mp.spawn(_process_worker, args=(cfg, _free_port(), path, None), nprocs=cfg.world, join=True)
        result = json.loads(Path(path).read_text())
        for variant in cfg.nccl_variants:
            progress(f"process: NCCL with {variant} (own processes: NCCL reads it at init)")
            vpath = str(Path(tmp) / f"{variant}.json")
            try:
                mp.spawn(_process_worker, args=(cfg, _free_port(), vpath, variant), nprocs=cfg.world, join=True)
                extra = json.loads(Path(vpath).read_text())["nccl"]
            except Exception as e:  # noqa: BLE001 - a variant that fails is recorded, the others still count
                for s in result["nccl"]:
                    result["nccl"][s]["notes"][variant] = f"failed: {type(e).__name__}: {e}"[:300]
                continue
            for s, v in extra.items():
                result["nccl"][s]["configs"].update(v["configs"])
                result["nccl"][s]["notes"].update(v["notes"])
    result["nccl"] = {int(k): v for k, v in result["nccl"].items()}
    result["symm"] = {int(k): v for k, v in result["symm"].items()}
    return result


THREAD_NCCL_METHOD = ("one process, one host thread: ncclCommInitAll + one NCCL group per all-reduce (CuPy "
                      "cupy.cuda.nccl), both GPUs' graphs captured at once; measured in its own process of the "
                      "same run so a NCCL failure cannot take thread mode's other results with it")


def _thread_nccl_worker(cfg: BenchConfig, sizes: tuple[int, ...], result_path: str) -> None:
    """Thread mode's NCCL hand-off (floorline.comm.thread_nccl), timed like ours: graph replay and eager."""
    os.environ.setdefault("NCCL_NVLS_ENABLE", "0")
    import torch

    from floorline.comm.thread_nccl import ThreadNccl

    devices = list(range(cfg.world))
    for d in devices:
        torch.empty(1, device=f"cuda:{d}")
    tn = ThreadNccl(devices)
    local = Local(devices, devices, cfg.world, lambda obj: [obj], lambda: None, timeout_s=cfg.timeout_s * 3)
    dtype = getattr(torch, cfg.dtype)
    eb = torch.finfo(dtype).bits // 8
    out: dict[str, Any] = {"version": tn.version, "sizes": {}}
    for size in sizes:
        n = size // eb
        xs = {r: rank_input(n, r, cfg.seed + size, dtype, f"cuda:{r}") for r in devices}
        outs = {r: torch.full_like(xs[r], float("nan")) for r in devices}

        def op(r: int, i: int, xs: dict = xs, outs: dict = outs, n: int = n) -> None:
            tn.all_reduce(r, xs[r].data_ptr(), outs[r].data_ptr(), n, cfg.dtype,
                          torch.cuda.current_stream(r).cuda_stream)

        for r in devices:
            with torch.cuda.device(r):
                op(r, 0)
        _spin_sync(devices, local.timeout_s)
        err = max(error_ratio(outs[r], reference_sum(n, cfg.world, cfg.seed + size, dtype, outs[r].device), cfg.dtype)
                  for r in devices)
        graph = time_graph(local, op, n_ops_for(size), cfg.iters, concurrent=True)
        eager = time_eager(local, op, 20)
        out["sizes"][str(size)] = {"graph": graph, "eager": eager, "err": err}
    for d in devices:
        torch.cuda.synchronize(d)
    tn.close()
    Path(result_path).write_text(json.dumps(out))


def run_thread_nccl(cfg: BenchConfig, progress: Callable[[str], None], timeout_s: float | None = None) -> dict[str, Any]:
    """NCCL for the sizes where thread mode's automatic choice hands the message to NCCL; {'reason': ...}
    when it cannot run here (no CuPy, init or capture failure, or no answer within timeout_s)."""
    import multiprocessing as mp

    from floorline.comm import choice, thread_nccl

    table = choice.crossover(cfg.world)
    # --tune-crossover: every size above the one-shot range, so a candidate table can move the NCCL
    # crossover either way; otherwise only the sizes the current table hands to NCCL
    want = ("twoshot", "nccl") if cfg.tune_crossover else ("nccl",)
    sizes = tuple(s for s in cfg.sizes if choice.choose(s, cfg.world, True, table) in want)
    if not sizes:
        return {"sizes": {}, "version": None}  # nothing to hand off at these sizes
    reason = thread_nccl.unavailable_reason()
    if reason:
        return {"reason": reason}
    progress(f"thread: NCCL hand-off (single thread, ncclCommInitAll) at {len(sizes)} sizes")
    timeout_s = timeout_s or 45.0 + 5.0 * max(0, len(sizes) - 2)  # run 3: init + 2 sizes within 45 s
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "thread_nccl.json"
        proc = mp.get_context("spawn").Process(target=_thread_nccl_worker, args=(cfg, sizes, str(path)))
        proc.start()
        proc.join(timeout_s)
        if proc.is_alive():
            proc.kill()
            proc.join()
            return {"reason": f"single-thread NCCL gave no answer within {timeout_s:g} s"}
        if proc.exitcode != 0 or not path.exists():
            return {"reason": f"single-thread NCCL process failed (exit code {proc.exitcode}; see stderr)"}
        res = json.loads(path.read_text())
    res["sizes"] = {int(k): v for k, v in res["sizes"].items()}
    bad = [k for k, v in res["sizes"].items() if v["err"] > 1]
    if bad:
        return {"reason": f"single-thread NCCL gave wrong sums at {bad} bytes", "rejected": res}
    return res


def run_thread_mode(cfg: BenchConfig, progress: Callable[[str], None],
                    nccl: dict[str, Any] | None = None) -> dict[str, Any]:
    from floorline.comm import choice, init_threads

    # the bench times thread mode's NCCL hand-off in its own process (run_thread_nccl); here: our kernels
    comms_list = init_threads(list(range(cfg.world)), _make_comm_config(cfg), nccl=False)
    comms = dict(enumerate(comms_list))
    vlists = {v: init_threads(list(range(cfg.world)), _make_comm_config(cfg, v), nccl=False)
              for v in VARIANT_COMM if v in cfg.variants}
    vcomms = {v: dict(enumerate(cl)) for v, cl in vlists.items()}
    local = Local(list(range(cfg.world)), list(range(cfg.world)), cfg.world, lambda obj: [obj], lambda: None,
                  timeout_s=cfg.timeout_s * 6)
    try:
        result = {
            "floor": measure_floor(local, comms, cfg.pingpong_rounds),
            "ours": [asdict(s) for s in measure_ours(local, comms, cfg.sizes, cfg, progress, vcomms)],
            "fused": measure_fused(local, comms, cfg),
            "kernel": _kernel_info(comms[0], cfg, vcomms),
        }
    finally:
        for c in comms_list + [c for cl in vlists.values() for c in cl]:
            c.close()
    nccl = nccl or {"reason": "not measured"}
    have = "reason" not in nccl
    result["thread_nccl"] = {"available": have, "reason": nccl.get("reason"), "version": nccl.get("version"),
                             "method": THREAD_NCCL_METHOD,
                             "graph_us": {int(k): _med(v["graph"]) for k, v in nccl.get("sizes", {}).items()}}
    for s in result["ours"]:
        # the library's automatic choice in thread mode, with the hand-off it has on this machine
        s["auto"] = choice.choose(s["size_bytes"], cfg.world, have, choice.crossover(cfg.world))
        if s["auto"] == "nccl":
            s["ours"]["nccl"] = nccl["sizes"][s["size_bytes"]]
    return result


def link_bandwidth_gbps(world: int) -> dict[str, Any]:
    """Unidirectional GPU0 -> GPU1 copy bandwidth (copy engine, peer access), 256 MB, median of 10."""
    import torch

    nbytes = 256 << 20
    a = torch.empty(nbytes, dtype=torch.uint8, device="cuda:0").fill_(1)
    b = torch.empty(nbytes, dtype=torch.uint8, device="cuda:1")
    for _ in range(3):
        b.copy_(a)
    torch.cuda.synchronize(0)
    torch.cuda.synchronize(1)
    samples = []
    for _ in range(10):
        s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        s.record()
        b.copy_(a)
        e.record()
        e.synchronize()
        samples.append(nbytes / (s.elapsed_time(e) * 1e-3) / 1e9)
    del a, b
    torch.cuda.empty_cache()
    return {"gbps": statistics.median(samples), "bytes": nbytes, "method": "torch copy_ cuda:0 -> cuda:1, median of 10"}


# ---------------------------------------------------------------------------------------------
# packets, table, plot
def _med(samples: list[float] | None) -> float | None:
    return statistics.median(samples) if samples else None


def _timing(samples: list[float], method: str) -> Any:
    from floorline.gpu.timing import TimingResult

    return TimingResult(list(samples), method, 3).to_model()


def nccl_best(entry: dict[str, Any]) -> tuple[str | None, dict[str, Any] | None]:
    """The fastest NCCL configuration by median graph latency (and that configuration's data)."""
    cfgs = {k: v for k, v in entry.get("configs", {}).items() if v.get("graph") and v.get("err", 0) <= 1}
    if not cfgs:
        return None, None
    name = min(cfgs, key=lambda k: statistics.median(cfgs[k]["graph"]))
    return name, cfgs[name]


@dataclass
class Row:
    mode: str
    size_bytes: int
    count: int
    algorithm: str
    graph_us: float
    eager_us: float | None
    algbw_gbps: float
    busbw_gbps: float
    wrong: int
    nccl_us: float | None
    symm_us: float | None
    floor_one_way_us: float
    floor_us: float
    vs_nccl: float | None
    vs_symm: float | None
    packet: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def build_rows(mode: str, res: dict[str, Any], proc: dict[str, Any] | None, link: dict[str, Any],
               world: int) -> list[Row]:
    fl = res["floor"]
    rows = []
    for s in res["ours"]:
        size, alg = s["size_bytes"], s["auto"]
        nccl_entry = (proc or {}).get("nccl", {}).get(size, {})
        nname, nbest = nccl_best(nccl_entry)
        if alg == "nccl" and "nccl" in s["ours"]:  # thread mode: its own single-thread NCCL, same run
            graph, eager, err = s["ours"]["nccl"]["graph"], s["ours"]["nccl"]["eager"], s["ours"]["nccl"]["err"]
        elif alg == "nccl" and nbest is not None:
            graph, eager, err = nbest["graph"], nbest["eager"], nbest["err"]
        else:
            alg = alg if alg in s["ours"] else next(iter(s["ours"]))
            graph, eager, err = s["ours"][alg]["graph"], s["ours"][alg]["eager"], s["ours"][alg]["err"]
        g = statistics.median(graph)
        algbw = size / (g * 1e-6) / 1e9
        symm = (proc or {}).get("symm", {}).get(size, {})
        n_us = _med(nbest["graph"]) if nbest else None
        s_us = _med(symm.get("graph"))
        floor_us = fl["one_way_us"] + fl["kernel_slot_us"] + (world - 1) * size / (link["gbps"] * 1e3)
        # the defaults only: an opt-in variant's wrong sum is recorded in params.algorithms and a note
        wrong = sum(1 for k, v in s["ours"].items() if "@" not in k and v["err"] > 1) + (1 if err > 1 else 0)
        rows.append(Row(mode, size, s["n"], alg, g, _med(eager), algbw, algbw * 2 * (world - 1) / world, wrong,
                        n_us, s_us, fl["one_way_us"], floor_us, (n_us / g) if n_us else None,
                        (s_us / g) if s_us else None,
                        extra={"err": err, "nccl_name": nname, "size": s, "nccl_entry": nccl_entry, "symm": symm}))
    return rows


def write_packets(rows: list[Row], res_by_mode: dict[str, dict[str, Any]], proc: dict[str, Any] | None,
                  link: dict[str, Any], cfg: BenchConfig, out_dir: Path) -> list[Path]:
    from floorline.evidence.schema import Baseline, CompilerInfo, Correctness, Floor
    from floorline.evidence.store import artifact, new_packet, write_packet

    out_dir.mkdir(parents=True, exist_ok=True)
    plots = {}
    for mode in res_by_mode:
        svg = out_dir / f"allreduce-{mode}.svg"
        svg.write_text(plot_svg([r for r in rows if r.mode == mode]))
        plots[mode] = artifact(svg, out_dir)
    paths = []
    for r in rows:
        res = res_by_mode[r.mode]
        fl, kern = res["floor"], res["kernel"]
        s = r.extra["size"]
        nentry = r.extra["nccl_entry"]
        nname = r.extra["nccl_name"]
        baselines = []
        tried = {k: {"graph_us": _med(v.get("graph")), "eager_us": _med(v.get("eager")), "err": v.get("err")}
                 for k, v in nentry.get("configs", {}).items()}
        ncfg = {"chosen": nname, "tried": tried, "failed_or_unavailable": nentry.get("notes", {}),
                "graph_captured": True, "NCCL_NVLS_ENABLE": os.environ.get("NCCL_NVLS_ENABLE", "0"),
                "measured_in": "process mode (one process per GPU), same run"}
        if nname:
            best = nentry["configs"][nname]
            baselines.append(Baseline(name="nccl", timing=_timing(best["graph"], "cuda_graph_replay"), ratio=r.vs_nccl,
                                      config=ncfg, version=None))
        else:
            baselines.append(Baseline(name="nccl", status="skipped", reason="NCCL not measured (needs process mode in "
                                      "the same run)" if proc is None else "every NCCL configuration failed",
                                      config=ncfg))
        symm = r.extra["symm"]
        if symm.get("graph"):
            baselines.append(Baseline(name="torch_symm_mem", timing=_timing(symm["graph"], "cuda_graph_replay"),
                                      ratio=r.vs_symm, config={"op": "torch.ops.symm_mem.one_shot_all_reduce",
                                      "eager_us": _med(symm.get("eager")), "multicast": "off", "err": symm.get("err")}))
        else:
            reason = symm.get("reason") or symm.get("graph_reason") or "not measured (needs process mode in the same run)"
            baselines.append(Baseline(name="torch_symm_mem", status="skipped", reason=reason,
                                      config={"eager_us": _med(symm.get("eager"))}))
        per_alg = {a: {"graph_us": _med(v["graph"]), "eager_us": _med(v["eager"]), "err": v["err"]}
                   for a, v in s["ours"].items()}
        params: dict[str, Any] = {
            "size_bytes": r.size_bytes, "world": cfg.world, "mode": r.mode, "graph": True, "algorithm": r.algorithm,
            "dtype": cfg.dtype, "elements": r.count, "eager_us": r.eager_us, "algbw_gbps": r.algbw_gbps,
            "busbw_gbps": r.busbw_gbps, "algorithms": per_alg,
            "floor_one_way_us": fl["one_way_us"], "floor_kernel_slot_us": fl["kernel_slot_us"],
            "link_gbps": link["gbps"], "floor_composite_us": r.floor_us, "over_composite_floor": r.graph_us / r.floor_us,
            "us_over_one_way": r.graph_us - fl["one_way_us"], "crossover": kern["crossover"],
            "kernel_local_bytes": kern["attributes"]["local_bytes"],  # per-thread stack (peer table), not spills
            "epoch_scheme": kern.get("epoch_scheme"), "block_threads": kern.get("block_threads", {}).get(str(r.size_bytes)),
        }
        if r.size_bytes == FUSED_HIDDEN * 2:
            fu = res["fused"]
            params["fused_residual_rmsnorm"] = {
                "hidden": fu["hidden"], "tokens": fu["tokens"], "fused_us": _med(fu["fused"]),
                "plain_all_reduce_us": _med(fu["plain"]), "unfused_torch_us": _med(fu["unfused"]),
                "fused_over_plain": _med(fu["fused"]) / _med(fu["plain"]), "err": fu["err"],
                "variant": "split (the default of all_reduce_residual_rmsnorm)",
                "kernel_attributes": kern.get("fused_attributes")}
            for k in ("block", "light", "cluster"):
                if fu.get(k):
                    params["fused_residual_rmsnorm"].update({
                        f"{k}_us": _med(fu[k]), f"{k}_over_plain": _med(fu[k]) / _med(fu["plain"]),
                        f"{k}_err": fu.get(f"{k}_err"),
                        f"{k}_variant": f"all_reduce_residual_rmsnorm(variant='{k}')"})
            if fu.get("cluster_unavailable"):
                params["fused_residual_rmsnorm"]["cluster_unavailable"] = fu["cluster_unavailable"]
        if kern.get("variant_attributes"):
            params["variant_kernel_attributes"] = kern["variant_attributes"]
        passed = r.wrong == 0
        err = r.extra["err"]
        packet = new_packet(
            KIND, status="passed" if passed else "failed", failure_class=None if passed else "correctness",
            command=["floorline", "bench", "allreduce", "--world", str(cfg.world), "--mode", r.mode],
            params=params,
            correctness=Correctness(reference="float64 sum of every rank's input (fresh randn per rank, output "
                                    "poisoned with NaN before the run)",
                                    metric="max |out - ref| / (rel*|ref| + abs), rel/abs per dtype", value=err,
                                    tolerance=1.0, passed=passed, trials=1, seeds=[cfg.seed + r.size_bytes]),
            timing=_timing(s["ours"][r.algorithm]["graph"] if r.algorithm in s["ours"] else
                           nentry["configs"][nname]["graph"], f"cuda_graph_replay({n_ops_for(r.size_bytes)} ops/graph), "
                           "slowest rank per replay"),
            baselines=baselines,
            floor=Floor(model="one-way GPU->GPU latency: flag ping-pong over NVLink, same run "
                        f"({fl['round_trips']} round trips / 2)", bytes=float(r.size_bytes),
                        ceiling=link["gbps"], ceiling_unit="GB/s (peer copy, same run)",
                        value=fl["one_way_us"], fraction=fl["one_way_us"] / r.graph_us),
            compiler=CompilerInfo(tool="nvrtc", version=kern["nvrtc"], flags=["-std=c++17", "--use_fast_math"],
                                  target_arch=kern["arch"], registers=kern["attributes"]["registers"]),
            artifacts=[plots[r.mode]],
            notes=[f"algorithm chosen by floorline.comm.choice ({r.algorithm})"
                   + ("; NCCL is faster at this size, so the automatic choice hands the message to NCCL"
                      if r.algorithm == "nccl" else ""),
                   f"eager: wall clock per call incl. synchronize ({r.eager_us:.1f} us)" if r.eager_us else "eager: -",
                   *_thread_nccl_notes(r, res),
                   *[f"opt-in variant {k} gave a WRONG sum (err {v['err']:.3g}); not used by the automatic choice"
                     for k, v in s["ours"].items() if "@" in k and v["err"] > 1]],
        )
        r.packet = str(write_packet(packet, out_dir, name=f"bench-allreduce-{r.mode}-w{cfg.world}-{r.size_bytes}"))
        paths.append(Path(r.packet))
    return paths


def _thread_nccl_notes(r: Row, res: dict[str, Any]) -> list[str]:
    tn = res.get("thread_nccl")
    if r.mode != "thread" or not tn:
        return []
    if tn["available"]:
        return [f"thread-mode NCCL hand-off: {tn['method']} (NCCL {tn['version']})"] if r.algorithm == "nccl" else []
    return [f"thread-mode NCCL hand-off unavailable, the automatic choice falls back to two-shot: {tn['reason']}"]


def plot_svg(rows: list[Row]) -> str:
    from floorline.report.plot import line_plot

    series: dict[str, list[tuple[float, float]]] = {
        "ours (auto)": [(r.size_bytes, r.graph_us) for r in rows],
        "NCCL (fastest)": [(r.size_bytes, r.nccl_us) for r in rows if r.nccl_us],
        "torch symm_mem": [(r.size_bytes, r.symm_us) for r in rows if r.symm_us],
        "floor (1-way+slot+bytes/bw)": [(r.size_bytes, r.floor_us) for r in rows],
    }
    return line_plot({k: v for k, v in series.items() if v}, x_label="message bytes (bf16)",
                     y_label="µs per op (CUDA graph)", log_x=True)


HEADERS = ["mode", "size(B)", "count", "type", "redop", "algo", "time(us)", "algbw(GB/s)", "busbw(GB/s)", "#wrong",
           "eager(us)", "nccl(us)", "symm(us)", "floor(us)", "over 1-way(us)", "vs nccl", "vs symm"]


def table_rows(rows: list[Row], dtype: str) -> list[list[Any]]:
    f = lambda v, p=2: "-" if v is None else f"{v:.{p}f}"  # noqa: E731
    return [[r.mode, r.size_bytes, r.count, dtype, "sum", r.algorithm, f(r.graph_us), f(r.algbw_gbps), f(r.busbw_gbps),
             r.wrong, f(r.eager_us, 1), f(r.nccl_us), f(r.symm_us), f(r.floor_us), f(r.graph_us - r.floor_one_way_us),
             f(r.vs_nccl), f(r.vs_symm)] for r in rows]


def _finish_mode(mode: str, res: dict[str, Any], proc: dict[str, Any] | None, link: dict[str, Any], cfg: BenchConfig,
                 out_dir: Path) -> list[Row]:
    """Packets for one mode as soon as it is measured (a later mode that fails cannot take them with it),
    and a one-line-per-size log on stderr."""
    rows = build_rows(mode, res, proc, link, cfg.world)
    write_packets(rows, {mode: res}, proc, link, cfg, out_dir)
    f = lambda v: "-" if v is None else f"{v:.2f}"  # noqa: E731
    fl = res["floor"]
    print(f"[{mode}] one-way {fl['one_way_us']:.3f} us, graph slot {fl['kernel_slot_us']:.3f} us, "
          f"link {link['gbps']:.0f} GB/s", file=sys.stderr)
    for r in rows:
        algs = " ".join(f"{a}={_med(v['graph']):.2f}" for a, v in r.extra["size"]["ours"].items())
        print(f"[{mode}] {r.size_bytes:>9} B {r.algorithm:8} graph {r.graph_us:8.2f} us eager {f(r.eager_us):>7} "
              f"nccl {f(r.nccl_us):>7} ({r.extra['nccl_name']}) symm {f(r.symm_us):>7} floor {r.floor_us:6.2f} "
              f"| {algs} | wrong {r.wrong}", file=sys.stderr)
    fu = res["fused"]
    light = "".join(f" {k} {_med(fu[k]):.2f} us (err {fu[k + '_err']:.3f})" for k in ("block", "light", "cluster")
                    if fu.get(k))
    print(f"[{mode}] fused (split) {_med(fu['fused']):.2f} us{light} plain {_med(fu['plain']):.2f} us unfused "
          f"{_med(fu['unfused']):.2f} us err {fu['err']:.3f}", file=sys.stderr)
    return rows


# ---------------------------------------------------------------------------------------------
# --tune-crossover: a candidate crossover table from this run (never adopted automatically)
def derive_crossover(points: list[dict[str, Any]]) -> dict[str, Any]:
    """points: per size {"size": bytes, "oneshot": us|None, "twoshot": us|None, "nccl": us|None} (graph
    medians of one mode, one run). One-shot keeps every size from the smallest up while it is no slower
    than two-shot; then our kernels keep every size while the faster of them is no slower than NCCL (a
    size where NCCL was not measured stays ours: choose() falls back to two-shot without a hand-off).
    Returns the two thresholds and the evidence for each decision."""
    pts = sorted(points, key=lambda p: p["size"])
    oneshot_max, why = 0, []
    for p in pts:
        o, t = p.get("oneshot"), p.get("twoshot")
        if o is None or (t is not None and o > t):
            why.append(f"two-shot from {p['size']} B ({t} vs one-shot {o} us)")
            break
        oneshot_max = p["size"]
    twoshot_max = oneshot_max
    for p in pts:
        if p["size"] <= oneshot_max:
            continue
        ours = min(v for v in (p.get("oneshot"), p.get("twoshot")) if v is not None) if (
            p.get("oneshot") is not None or p.get("twoshot") is not None) else None
        n = p.get("nccl")
        if ours is None or (n is not None and n < ours):
            why.append(f"NCCL from {p['size']} B ({n} vs ours {ours} us)")
            break
        twoshot_max = p["size"]
        if n is not None:
            why.append(f"ours at {p['size']} B ({ours:.2f} vs NCCL {n:.2f} us, {n / ours:.3f}x)")
    return {"oneshot_max_bytes": oneshot_max, "twoshot_max_bytes": twoshot_max, "evidence": why}


def crossover_points(mode: str, res: dict[str, Any], proc: dict[str, Any] | None) -> list[dict[str, Any]]:
    """One mode's medians for derive_crossover: its own kernels, and its own NCCL (process NCCL at its
    fastest configuration; thread mode's single-thread NCCL where it was timed)."""
    pts = []
    tn = (res.get("thread_nccl") or {}).get("graph_us", {}) if mode == "thread" else {}
    for s in res["ours"]:
        size = s["size_bytes"]
        if mode == "thread":
            n = tn.get(size)
        else:
            _, best = nccl_best((proc or {}).get("nccl", {}).get(size, {}))
            n = _med(best["graph"]) if best else None
        ok = {a: v for a, v in s["ours"].items() if a in ("oneshot", "twoshot") and v["err"] <= 1}
        pts.append({"size": size, "oneshot": _med(ok["oneshot"]["graph"]) if "oneshot" in ok else None,
                    "twoshot": _med(ok["twoshot"]["graph"]) if "twoshot" in ok else None, "nccl": n})
    return pts


def write_candidate(res_by_mode: dict[str, dict[str, Any]], proc: dict[str, Any] | None, cfg: BenchConfig,
                    out_dir: Path) -> tuple[Path, dict[str, Any]]:
    """CANDIDATE_FILE next to the packets, in crossover.toml's schema: [world.N] from process mode and
    [world.N.thread] from thread mode (floorline.comm.choice.crossover(world, path, mode) reads both).
    Adopt it by copying the values into src/floorline/comm/crossover.toml and re-running the bench."""
    from floorline.evidence.collect import git_info

    commit = git_info().commit or "unknown"
    derived = {m: derive_crossover(crossover_points(m, r, proc)) for m, r in res_by_mode.items()}
    sizes = ", ".join(str(x) for x in sorted(cfg.sizes))
    lines = [f"# Candidate crossover derived by `floorline bench allreduce --tune-crossover` (commit {commit}),",
             f"# world {cfg.world}, {cfg.dtype}, CUDA-graph medians of one run at sizes {sizes} B.",
             "# NOT adopted: src/floorline/comm/crossover.toml is what the library uses. Use it with",
             "# CommConfig(crossover_file=<this file>) or copy its values there, then re-run the bench.", ""]
    for m, d in derived.items():
        head = f"[world.{cfg.world}]" if m == "process" or "process" not in derived else f"[world.{cfg.world}.{m}]"
        ev = "; ".join(d["evidence"]) or "one algorithm won at every size"
        lines += [head, f"oneshot_max_bytes = {d['oneshot_max_bytes']}", f"twoshot_max_bytes = {d['twoshot_max_bytes']}",
                  f"source = {json.dumps(f'{m} mode, bench run of commit {commit}: {ev}')}", ""]
    path = out_dir / CANDIDATE_FILE
    out_dir.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines))
    return path, derived


def run(cfg: BenchConfig, out_dir: Path, progress: Callable[[str], None] = lambda m: None) -> dict[str, Any]:
    """Every mode asked for, baselines and floor, packets and plot. Returns rows and the floor parts."""
    import torch

    from floorline.comm.errors import P2PUnavailable
    from floorline.comm.peer import require_peer_access

    require_peer_access(list(range(cfg.world)), lambda a, b: torch.cuda.can_device_access_peer(a, b))
    progress("peer copy bandwidth")
    link = link_bandwidth_gbps(cfg.world)
    res_by_mode: dict[str, dict[str, Any]] = {}
    proc = None
    rows: list[Row] = []
    if "process" in cfg.modes:
        progress("process mode: one process per GPU")
        proc = run_process_mode(cfg, progress)
        res_by_mode["process"] = proc
        rows += _finish_mode("process", proc, proc, link, cfg, out_dir)
    if "thread" in cfg.modes:
        tn = run_thread_nccl(cfg, progress)
        if "reason" in tn:
            print(f"[thread] no NCCL hand-off: {tn['reason']}", file=sys.stderr)
        progress("thread mode: one host thread drives every GPU")
        res_by_mode["thread"] = run_thread_mode(cfg, progress, tn)
        rows += _finish_mode("thread", res_by_mode["thread"], proc, link, cfg, out_dir)
    if not res_by_mode:
        raise P2PUnavailable("no mode ran")
    candidate = None
    if cfg.tune_crossover:
        path, derived = write_candidate(res_by_mode, proc, cfg, out_dir)
        candidate = {"path": str(path), **derived}
        print(f"candidate crossover: {path}: {derived}", file=sys.stderr)
    return {"rows": rows, "crossover_candidate": candidate, "link": link, "floor": {m: r["floor"] for m, r in res_by_mode.items()},
            "fused": {m: {k: (_med(v) if isinstance(v, list) else v) for k, v in r["fused"].items()}
                      for m, r in res_by_mode.items()}}
