"""`floorline bench decode --tp N --tp-mode process`: one process per GPU (torch.multiprocessing spawn,
gloo only to exchange floorline.comm's IPC handles and the results). Each process generates its own
shard on its GPU, captures its whole step (all-reduces included) as one CUDA graph on its default
capture stream, and replays it; the GPUs keep each other in step through the collectives. Per token:
the slowest rank's CUDA-event time of the same replay index. The parent writes the packets (same
fields and floor as single-thread mode, bench/decode_tp.py; `params.mode = "process"`).
No GEMV tuning here: the default launch shapes (or the ones passed in).
"""

from __future__ import annotations

import json
import socket
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _step(dec: Any, comm: Any, b: int) -> None:
    """One decode step of this process's rank, its sums through floorline.comm (process mode)."""
    for partial, gain in dec.step_gen(b):
        comm.all_reduce_residual_rmsnorm(partial, dec.residual[:b], gain, dec.cfg.rms_norm_eps,
                                         out=dec.h[:b], residual_out=dec.residual[:b])


def _worker(rank: int, spec: dict[str, Any], port: int, result_path: str) -> None:
    import torch
    import torch.distributed as dist

    from floorline.bench.decode import step_bytes
    from floorline.bench.decode_tp import COMM_BYTES, replicated_bytes
    from floorline.comm import CommConfig, init_process
    from floorline.gpu.timing import wait_event
    from floorline.model.config import builtin
    from floorline.model.fast import LaunchConfigs
    from floorline.model.tp import RankDecoder, local_config
    from floorline.model.weights import random_shard

    tp = spec["tp"]
    torch.cuda.set_device(rank)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=tp)
    comm = init_process(config=CommConfig(max_bytes=COMM_BYTES, oneshot_max_bytes=COMM_BYTES), device=rank)
    out: dict[str, Any] = {"points": []}
    try:
        cfg = builtin(spec["model"]).cut(spec["layers"], spec["experts"])
        local_cfg = local_config(cfg, tp)
        part = random_shard(cfg, rank, tp, spec["weight_dtype"], f"cuda:{rank}", seed=0)
        torch.cuda.synchronize()
        torch.cuda.empty_cache()
        launch = LaunchConfigs()
        warm, iters = 5, spec["iters"]
        for b, c in spec["points"]:
            dec = RankDecoder(part, b, c + warm + iters + 16, launch)
            dec.set_context([c] * b, seed=0)  # the same seed on every rank: the same tokens

            snap = dec.snapshot()
            _step(dec, comm, b)  # compiles every kernel outside capture
            comm.synchronize()
            dec._restore(snap)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                _step(dec, comm, b)
            dec._restore(snap)
            torch.cuda.synchronize()
            dist.barrier()
            for _ in range(warm):
                graph.replay()
            comm.synchronize()
            ev = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)) for _ in range(iters)]
            for s, e in ev:
                s.record()
                graph.replay()
                e.record()
            wait_event(ev[-1][1], 300, "tensor-parallel decode replays")
            comm.check()
            samples = [s.elapsed_time(e) * 1e3 for s, e in ev]
            dec.record = []
            _step(dec, comm, b)
            comm.synchronize()
            hit = [int(torch.unique(ids).numel()) for ids in dec.record]
            nbytes = step_bytes(replace(part, cfg=local_cfg), hit, b, c, spec["kv_dtype"])
            out["points"].append({"batch": b, "context": c, "samples_us": samples, "bytes": nbytes,
                                  "experts_hit": hit})
            del graph, dec
            torch.cuda.empty_cache()
        out["replicated_bytes"] = replicated_bytes(part)
    finally:
        gathered: list[Any] = [None] * tp
        dist.all_gather_object(gathered, out)
        comm.close()
        dist.destroy_process_group()
    if rank == 0:
        Path(result_path).write_text(json.dumps(gathered))


def run_process(spec: dict[str, Any]) -> list[dict[str, Any]]:
    """Spawn one worker per GPU; returns every rank's results (rank order)."""
    import torch.multiprocessing as mp

    with tempfile.TemporaryDirectory() as d:
        path = str(Path(d) / "tp.json")
        mp.spawn(_worker, args=(spec, _free_port(), path), nprocs=spec["tp"], join=True)
        return json.loads(Path(path).read_text())


def run_tp_process(model: str, layers: int | None, experts: int | None, tp: int, batches: tuple[int, ...],
                   contexts: tuple[int, ...], weight_dtype: str, kv_dtype: str, iters: int, out_dir: Path | None,
                   progress: Any = lambda m: None) -> dict[str, Any]:
    import gc

    import torch

    from floorline.bench.decode import PRIORITY
    from floorline.bench.decode_tp import TpPoint, write_tp_point
    from floorline.bench.hbm import read_ceiling
    from floorline.errors import InputError
    from floorline.gpu.timing import TimingResult
    from floorline.model.config import builtin
    from floorline.model.fast import LaunchConfigs
    from floorline.model.tp import local_config

    if not torch.cuda.is_available() or torch.cuda.device_count() < tp:
        raise InputError(f"--tp: needs {tp} GPUs")
    cfg = builtin(model).cut(layers, experts)
    local_config(cfg, tp)
    progress("HBM read ceiling (same run, GPU 0, parent process)")
    with torch.cuda.device(0):
        hbm = read_ceiling(quick=True, progress=progress)
        gc.collect()
        torch.cuda.empty_cache()
    wanted = [(b, c) for (b, c) in PRIORITY if b in batches and c in contexts]
    wanted += [(b, c) for b in batches for c in contexts if (b, c) not in wanted]
    progress(f"process mode: {tp} workers (each generates its shard on its GPU)")
    ranks = run_process({"tp": tp, "model": model, "layers": layers, "experts": experts, "weight_dtype": weight_dtype,
                         "kv_dtype": kv_dtype, "iters": iters, "points": wanted})
    points = []
    for i, (b, c) in enumerate(wanted):
        per = [r["points"][i] for r in ranks]
        samples = [max(r["samples_us"][k] for r in per) for k in range(iters)]
        p = TpPoint(b, c, timing=TimingResult(samples, "cuda_events (slowest process per replay index)", 5))
        p.ms = p.timing.median / 1e3
        p.experts_hit = per[0]["experts_hit"]
        p.floor_bytes = max(r["bytes"] for r in per)
        rep = ranks[0]["replicated_bytes"]
        p.ideal_bytes = (sum(r["bytes"] for r in per) - (tp - 1) * rep) / tp
        p.floor_ms = p.floor_bytes / (hbm.tbps * 1e12) * 1e3
        progress(f"batch {b} context {c}: {p.ms:.3f} ms/token, {p.floor_ms / p.ms:.1%} of the per-GPU floor (process)")
        if out_dir is not None:
            p.packet = write_tp_point(cfg, tp, p, weight_dtype, kv_dtype, hbm.tbps,
                                      f"floorline.bench.hbm read_ceiling (quick, GPU 0), {hbm.config}", LaunchConfigs(),
                                      {}, rep, out_dir, mode="process")
        points.append(p)
    return {"config": cfg, "tp": tp, "ceiling_tbps": hbm.tbps, "points": points, "launch": LaunchConfigs(), "tune": {},
            "out_dir": out_dir}
