"""`floorline bench decode --tp N`: tensor-parallel decode over N GPUs of one host, single-thread mode
(model/tp.CommGroup: one host thread, one CUDA graph per GPU holding that rank's whole step and its
all-reduces; a token = one replay per GPU).

Each rank's weights are generated on its own GPU (weights.random_shard): the full model never exists
in host or device memory, which is what lets the 235B shape run at FP8 on two H200s.

Floor: the bytes ONE GPU must read per step (its shard's weights, incl. the distinct experts the batch
routed to, the replicated embedding row, router, norms and LM head, plus its K/V) over the same-run
HBM read ceiling; the slowest rank's bytes count (ranks read the same amount here). The all-reduces
(2 per layer) are NOT in the floor: their time is in the measured ms/token, so it counts fully
against the fraction. `params.ideal_split_*` also gives the floor if every byte of the model were
split evenly (nothing replicated), which is stricter. Time per token = per replay, the slower GPU's
CUDA-event time (both GPUs' graphs replay back to back; the collectives keep them in step).
"""

from __future__ import annotations

import gc
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from floorline.errors import InputError

# a rank's one-shot slot must carry B x hidden fp32 (64 x 8192 x 4 = 2 MB at most)
COMM_BYTES = 2 << 20


@dataclass
class TpPoint:
    batch: int
    context: int
    ms: float | None = None
    timing: Any = None
    wall_ms: float | None = None
    floor_bytes: float | None = None
    ideal_bytes: float | None = None
    floor_ms: float | None = None
    experts_hit: list[int] = field(default_factory=list)
    skipped: str | None = None
    packet: Path | None = None
    profile: list[dict[str, Any]] = field(default_factory=list)


def profile_group(group: Any, B: int, steps: int = 2) -> list[dict[str, Any]]:
    """Device time per kernel name over eager lockstep steps (both GPUs together, per step). Eager, so
    an all-reduce's time here includes waiting for the peer's launch; the GEMVs' times are their own."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(steps):
            group.eager_step(B)
        group.synchronize()
    rows = []
    for ev in prof.key_averages():
        dev_us = getattr(ev, "device_time_total", None) or getattr(ev, "cuda_time_total", 0)
        if dev_us:
            rows.append({"kernel": ev.key[:80], "us_per_step_all_gpus": dev_us / steps,
                         "launches_per_step_all_gpus": ev.count / steps})
    rows.sort(key=lambda r: -r["us_per_step_all_gpus"])
    return rows


def replicated_bytes(part: Any) -> float:
    """Bytes every rank holds whole and reads every step (norms, routers, LM head, final norm)."""
    total = part.lm_head.numel() * part.lm_head.element_size() + part.norm.numel() * part.norm.element_size()
    for L in part.layers:
        total += sum(t.numel() * t.element_size() for t in (L.attn_norm, L.mlp_norm, L.q_norm, L.k_norm))
        if L.is_moe:
            total += L.router.numel() * L.router.element_size()
    return float(total)


def time_group(group: Any, B: int, warmup: int, iters: int, timeout_s: float = 300.0) -> Any:
    """Per token: the slower GPU's event time around its replay (events on every GPU's stream)."""
    import torch

    from floorline.gpu.timing import TimingResult, wait_event

    devs = [r.device for r in group.ranks]
    for _ in range(warmup):
        group.step(B)
    group.synchronize()
    ev = [[(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)) for _ in range(iters)]
          for _ in devs]
    t0 = time.perf_counter()
    for i in range(iters):
        for d, e in zip(devs, ev, strict=True):
            e[i][0].record(torch.cuda.current_stream(d))
        group.step(B)
        for d, e in zip(devs, ev, strict=True):
            e[i][1].record(torch.cuda.current_stream(d))
    for e in ev:
        wait_event(e[-1][1], timeout_s, "tensor-parallel decode replays")
    wall_ms = (time.perf_counter() - t0) * 1e3 / iters
    for c in group.comms:
        c.check()
    samples = [max(e[i][0].elapsed_time(e[i][1]) for e in ev) * 1e3 for i in range(iters)]
    return TimingResult(samples, "cuda_events (slowest GPU per replay)", warmup), wall_ms


def run_tp(model: str, layers: int | None, experts: int | None, tp: int, batches: tuple[int, ...],
           contexts: tuple[int, ...], weight_dtype: str, kv_dtype: str, iters: int, out_dir: Path | None,
           tune: bool, deadline_s: float | None = None, progress: Any = lambda m: None) -> dict[str, Any]:
    import torch

    from floorline.bench.decode import PRIORITY, kv_bytes_per_token, step_bytes
    from floorline.comm import CommConfig, init_threads
    from floorline.model.config import builtin
    from floorline.model.fast import LaunchConfigs
    from floorline.model.tp import local_config
    from floorline.model.weights import random_shard

    if tp < 2:
        raise InputError(f"--tp: the tensor-parallel bench needs >= 2, got {tp}")
    if not torch.cuda.is_available() or torch.cuda.device_count() < tp:
        have = torch.cuda.device_count() if torch.cuda.is_available() else 0
        raise InputError(f"--tp: needs {tp} GPUs, this machine has {have}")
    if weight_dtype not in ("bf16", "fp8"):
        raise InputError(f"--weight-dtype: must be bf16 or fp8, got {weight_dtype!r}")
    if kv_dtype != "bf16":
        raise InputError(f"--kv-dtype: the decoder's cache is bf16 for now, got {kv_dtype!r}")
    for b in batches:
        if not 1 <= b <= 64:
            raise InputError(f"--batch: each must be in 1..64, got {b}")
    t_start = time.monotonic()
    cfg = builtin(model).cut(layers, experts)
    local_cfg = local_config(cfg, tp)  # validates tp against the heads and intermediate sizes
    from floorline.bench.hbm import read_ceiling

    progress("HBM read ceiling (same run, GPU 0)")
    with torch.cuda.device(0):
        hbm = read_ceiling(quick=True, progress=progress)
        gc.collect()
        torch.cuda.empty_cache()  # its buffers go back before ~120 GB of shard is allocated
    ceiling, ceiling_src = hbm.tbps, f"floorline.bench.hbm read_ceiling (quick, GPU 0), {hbm.config}"
    progress(f"all-reduce: floorline.comm single-thread mode over GPUs 0..{tp - 1}")
    comms = init_threads(list(range(tp)), CommConfig(max_bytes=COMM_BYTES, oneshot_max_bytes=COMM_BYTES), nccl=False)
    parts = []
    for r in range(tp):
        t0 = time.monotonic()
        with torch.cuda.device(r):
            parts.append(random_shard(cfg, r, tp, weight_dtype, f"cuda:{r}", seed=0))
            torch.cuda.synchronize(r)
            torch.cuda.empty_cache()  # the generation's scratch chunks
        gb = sum(_nbytes(parts[-1])) / 1e9
        progress(f"rank {r}: {weight_dtype} shard of {cfg.name} ({cfg.num_hidden_layers} layers, {cfg.num_experts} "
                 f"experts) on cuda:{r}, {gb:.1f} GB, {time.monotonic() - t0:.1f} s")
    launch, tune_table = LaunchConfigs(), {}
    if tune:
        from floorline.model.tune import tune_batch1

        with torch.cuda.device(0):
            launch, tune_table = tune_batch1(replace(parts[0], cfg=local_cfg, tp=(0, 1)), progress)
        gc.collect()
        torch.cuda.empty_cache()
    points = []
    wanted = [(b, c) for (b, c) in PRIORITY if b in batches and c in contexts]
    wanted += [(b, c) for b in batches for c in contexts if (b, c) not in wanted]
    try:
        for b, c in wanted:
            p = TpPoint(b, c)
            points.append(p)
            if deadline_s is not None and time.monotonic() - t_start > deadline_s:
                p.skipped = "time budget of this run spent"
                continue
            p.skipped = _fits(local_cfg, b, c, kv_dtype, tp, kv_bytes_per_token)
            if p.skipped:
                progress(f"batch {b} context {c}: skipped ({p.skipped})")
                continue
            progress(f"batch {b} context {c}: tensor parallel {tp}")
            measure_point(p, parts, comms, local_cfg, launch, kv_dtype, iters, step_bytes, progress)
            p.floor_ms = p.floor_bytes / (ceiling * 1e12) * 1e3
            progress(f"batch {b} context {c}: {p.ms:.3f} ms/token ({b * 1e3 / p.ms:.1f} tokens/s), "
                     f"{p.floor_ms / p.ms:.1%} of the {p.floor_ms:.3f} ms per-GPU floor")
            if out_dir is not None:
                p.packet = write_tp_point(cfg, tp, p, weight_dtype, kv_dtype, ceiling, ceiling_src, launch,
                                          tune_table, replicated_bytes(parts[0]), out_dir)
    finally:
        for c in comms:
            c.close()
    return {"config": cfg, "tp": tp, "ceiling_tbps": ceiling, "points": points, "launch": launch,
            "tune": tune_table, "out_dir": out_dir}


def measure_point(p: TpPoint, parts: list[Any], comms: list[Any], local_cfg: Any, launch: Any, kv_dtype: str,
                  iters: int, step_bytes: Any, progress: Any) -> None:
    import torch

    from floorline.model.tp import CommGroup, RankDecoder

    warm = 5
    ranks = []
    for r, part in enumerate(parts):
        with torch.cuda.device(r):
            dec = RankDecoder(part, p.batch, p.context + warm + iters + 16, launch)
            dec.set_context([p.context] * p.batch, seed=0)
            ranks.append(dec)
    for dec in ranks[1:]:  # one token stream: every rank starts from rank 0's tokens
        dec.tokens.copy_(ranks[0].tokens)
    group = CommGroup(ranks, comms)
    t0 = time.monotonic()
    group.capture(p.batch)
    progress(f"  captured {len(parts)} graphs in {time.monotonic() - t0:.1f} s (incl. one eager warm-up step)")
    p.timing, p.wall_ms = time_group(group, p.batch, warm, iters)
    p.ms = p.timing.median / 1e3
    ranks[0].record = []
    group.eager_step(p.batch)  # one eager step, to count the experts this batch routes to
    group.synchronize()
    p.experts_hit = [int(torch.unique(ids).numel()) for ids in ranks[0].record]
    ranks[0].record = None
    if p.batch == 1:
        try:
            p.profile = profile_group(group, p.batch)
        except Exception as e:  # noqa: BLE001 - a diagnostic; the measurement stands without it
            progress(f"  profile failed: {type(e).__name__}: {e}")
    per_rank = [step_bytes(replace(part, cfg=local_cfg), p.experts_hit, p.batch, p.context, kv_dtype)
                for part in parts]
    p.floor_bytes = max(per_rank)
    rep = replicated_bytes(parts[0])
    p.ideal_bytes = (sum(per_rank) - (len(parts) - 1) * rep) / len(parts)
    group.release()
    del group, ranks
    gc.collect()
    for r in range(len(parts)):
        with torch.cuda.device(r):
            torch.cuda.empty_cache()


def _nbytes(w: Any) -> list[int]:
    out = [w.embed.numel() * w.embed.element_size()]
    if w.lm_head is not w.embed:
        out.append(w.lm_head.numel() * w.lm_head.element_size())
    for L in w.layers:
        for lin in (L.qkv, L.o, L.gate_up, L.down):
            out.append(lin.nbytes)
        if L.router is not None:
            out.append(L.router.numel() * L.router.element_size())
    return out


def _fits(local_cfg: Any, batch: int, context: int, kv_dtype: str, tp: int, kv_bytes_per_token: Any) -> str | None:
    import torch

    from floorline.bench.decode import HEADROOM_BYTES

    need = batch * (context + 64) * kv_bytes_per_token(local_cfg, kv_dtype)
    for r in range(tp):
        free, _ = torch.cuda.mem_get_info(r)
        if need + HEADROOM_BYTES > free:
            return f"needs {need / 1e9:.1f} GB of KV cache on GPU {r}, {free / 1e9:.1f} GB free after its shard"
    return None


def baseline_reason(cfg: Any, tp: int, weight_dtype: str, gpu: float) -> str:
    """Why transformers is not run beside the tensor-parallel path (said in every packet); gpu: bytes
    of memory on one GPU."""
    H, E, inter = cfg.hidden_size, cfg.num_experts, cfg.moe_intermediate_size
    per_layer = H * (cfg.q_size + 2 * cfg.kv_size) + cfg.q_size * H + E * 3 * inter * H + E * H
    params = cfg.num_hidden_layers * per_layer + 2 * cfg.vocab_size * H
    text = (f"not run: transformers' Qwen3MoeForCausalLM is single-GPU here (no tensor parallel), and this "
            f"shape's bf16 weights are ~{params * 2 / 1e9:.0f} GB against {gpu / 1e9:.0f} GB on one GPU")
    if params * 2 <= gpu:
        text = ("not run: the tensor-parallel bench generates each rank's shard on its own GPU; transformers "
                "would need the whole bf16 model on one GPU, which this run never builds")
    if weight_dtype == "fp8":
        text += "; also, transformers runs bf16 weights only (no FP8 baseline)"
    return text


def write_tp_point(cfg: Any, tp: int, p: TpPoint, weight_dtype: str, kv_dtype: str, ceiling: float, ceiling_src: str,
                   launch: Any, tune_table: dict, rep_bytes: float, out_dir: Path, mode: str = "thread") -> Path:
    import torch

    from floorline.bench.decode import ms_timing
    from floorline.evidence.schema import Baseline, Floor
    from floorline.evidence.store import new_packet, write_packet

    n_ar = 2 * cfg.num_hidden_layers
    notes = [
        f"tokens/s: {p.batch * 1e3 / p.ms:.1f} (batch {p.batch} x 1000 / ms per step)",
        f"tensor parallel {tp}, "
        + ("single-thread mode: one host thread" if mode == "thread" else "process mode: one process per GPU")
        + f", one CUDA graph per GPU holding that rank's whole step with its {n_ar} fused all-reduce + residual + "
        "RMSNorm kernels (floorline.comm, one-shot push, fp32); a token = one replay per GPU",
        "timing: per replay, the slower GPU's CUDA-event time; the all-reduces are inside it and NOT in the floor "
        "(floor = one GPU's bytes / HBM ceiling), so their whole cost counts against the fraction",
        f"host wall clock per token over the timed replays: {p.wall_ms:.3f} ms" if p.wall_ms is not None else
        "host wall clock: not measured (process mode: each process replays on its own)",
        f"ideal-split floor (every byte split evenly over {tp} GPUs, nothing replicated): "
        f"{p.ideal_bytes / 1e9:.3f} GB -> {p.ideal_bytes / (ceiling * 1e12) * 1e3:.3f} ms, "
        f"{p.ideal_bytes / (ceiling * 1e12) * 1e3 / p.ms:.1%} of it reached",
        f"replicated on every GPU (read by each): LM head, embedding row, norms, routers "
        f"({rep_bytes / 1e9:.2f} GB)",
        f"distinct experts read per MoE layer this step: min {min(p.experts_hit, default=0)}, "
        f"max {max(p.experts_hit, default=0)}",
        "weights: seeded random, each rank's shard generated on its own GPU (weights.random_shard); "
        "FP8 e4m3 with per-output-channel scales" if weight_dtype == "fp8" else
        "weights: seeded random bf16, each rank's shard generated on its own GPU (weights.random_shard)",
        "context K/V is synthetic (random values at every cached position); decode reads the same bytes",
        f"HBM ceiling: {ceiling_src}",
    ]
    if cfg.cut_down:
        notes.append("cut down: " + ", ".join(cfg.cut_down))
    gpu = torch.cuda.get_device_properties(0).total_memory if torch.cuda.is_available() else 141e9
    reason = baseline_reason(cfg, tp, weight_dtype, gpu)
    packet = new_packet(
        "bench.decode",
        params={"model": cfg.name, "layers": cfg.num_hidden_layers, "experts": cfg.num_experts, "batch": p.batch,
                "context": p.context, "weight_dtype": weight_dtype, "kv_dtype": kv_dtype, "tp": tp,
                "mode": mode, "tokens_per_s": p.batch * 1e3 / p.ms, "allreduces_per_token": n_ar,
                "floor_per_gpu_bytes": p.floor_bytes, "ideal_split_bytes": p.ideal_bytes,
                "ideal_split_fraction": p.ideal_bytes / (ceiling * 1e12) * 1e3 / p.ms, "wall_ms_per_token": p.wall_ms,
                "experts_hit": p.experts_hit[:8], "launch": launch.as_dict(),
                "gemv_tuning": {k: v for k, v in tune_table.items()} if tune_table else {}},
        timing=ms_timing(p.timing),
        floor=Floor(model="bytes one GPU reads per step (its shard: weights incl. distinct experts hit, replicated "
                          "LM head/norms/routers, its K/V) / same-run HBM read ceiling; all-reduces not in the floor",
                    bytes=p.floor_bytes, ceiling=ceiling, ceiling_unit="TB/s", value=p.floor_ms,
                    fraction=p.floor_ms / p.ms),
        baselines=[Baseline(name="transformers", status="skipped", reason=reason)],
        notes=notes,
    )
    name = (f"bench-decode-{cfg.name}-L{cfg.num_hidden_layers}-E{cfg.num_experts}-{weight_dtype}-tp{tp}"
            f"-b{p.batch}-c{p.context}" + ("" if mode == "thread" else f"-{mode}"))
    return write_packet(packet, out_dir, name)


HEADERS = ["batch", "context", "ms/token", "tokens/s", "floor ms (per GPU)", "of floor", "of ideal split"]


def summary_rows(result: dict[str, Any]) -> list[list[Any]]:
    rows = []
    for p in result["points"]:
        if p.skipped:
            rows.append([p.batch, p.context, "-", "-", "-", "-", f"skipped: {p.skipped}"])
            continue
        ideal_ms = p.ideal_bytes / (result["ceiling_tbps"] * 1e12) * 1e3
        rows.append([p.batch, p.context, f"{p.ms:.3f}", f"{p.batch * 1e3 / p.ms:.1f}", f"{p.floor_ms:.3f}",
                     f"{p.floor_ms / p.ms:.1%}", f"{ideal_ms / p.ms:.1%}"])
    return rows
