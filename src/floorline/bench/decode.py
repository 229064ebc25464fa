"""`floorline bench decode`: ms/token and tokens/s of the fast decoder at batch 1/8/64 and contexts
1K/32K/128K, against the floor (bytes a step must read over the same-run HBM read ceiling) and
against Hugging Face transformers on the very same weight tensors, in the same process.

Floor bytes per step = every dense weight (attention, norms, router, LM head) + per MoE layer the
distinct experts the batch actually routed to in the measured step (counted from the router's
output) + the K/V cache the batch reads. Context K/V is synthetic (random values written where a
prefill would have put them): decode reads the same bytes whatever they hold.
"""

from __future__ import annotations

import gc
import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from floorline.bench.decode_hf import hf_model  # noqa: F401 - moved there; tests import it from here
from floorline.errors import InputError
from floorline.model.run import CHECK_KV_DTYPES

BATCHES = (1, 8, 64)
CONTEXTS = (1024, 32768, 131072)
# Order of measurement when time is short: the headline target first.
PRIORITY = ((1, 1024), (64, 1024), (8, 1024), (1, 32768), (8, 32768), (1, 131072), (64, 32768), (8, 131072), (64, 131072))
HEADROOM_BYTES = 6 << 30  # workspaces, logits, allocator slack
# The bench runs the caches `decode --check` validates. Both cost 2 bytes a value; fp16 is the default
# (model.fast.DEFAULT_KV_DTYPE) because its 3 more mantissa bits keep the 64-step check under 1e-3
# (docs/notes/decode.md: bf16 K/V 2.9e-3 on an H200, fp16 3.7e-4): the benchmarked datapath is the
# validated one.
BENCH_KV_DTYPES = CHECK_KV_DTYPES


@dataclass
class Point:
    batch: int
    context: int
    ms: float | None = None
    timing: Any = None
    floor_bytes: float | None = None
    floor_ms: float | None = None
    experts_hit: list[int] = field(default_factory=list)
    hf_ms: float | None = None
    hf_timing: Any = None
    hf_config: dict[str, Any] = field(default_factory=dict)
    hf_reason: str | None = None
    # transformers eager (the 95.6 ms setting), headline point only: a second, slower peer
    hf_eager_ms: float | None = None
    hf_eager_timing: Any = None
    hf_eager_reason: str | None = None
    hf_eager_config: dict[str, Any] = field(default_factory=dict)
    skipped: str | None = None
    packet: Path | None = None


def kv_bytes_per_token(cfg: Any, kv_dtype: str) -> float:
    from floorline.kernels.kv_cache import bytes_per_token_head

    return 2 * cfg.num_hidden_layers * cfg.num_key_value_heads * bytes_per_token_head(kv_dtype, cfg.head_dim)


def step_bytes(w: Any, experts_hit: list[int], batch: int, context: int, kv_dtype: str) -> float:
    """Bytes one decode step must read: weights (distinct experts per MoE layer) + K/V."""
    total = 0.0
    moe_i = 0
    for L in w.layers:
        total += L.qkv.nbytes + L.o.nbytes
        total += sum(t.numel() * t.element_size() for t in (L.attn_norm, L.mlp_norm, L.q_norm, L.k_norm))
        E = L.gate_up.w.shape[0]
        per_expert = (L.gate_up.nbytes + L.down.nbytes) / E
        if L.is_moe:
            total += L.router.numel() * L.router.element_size() + per_expert * experts_hit[moe_i]
            moe_i += 1
        else:
            total += per_expert
    total += w.lm_head.numel() * w.lm_head.element_size() + w.norm.numel() * w.norm.element_size()
    total += batch * w.cfg.hidden_size * w.embed.element_size()
    total += batch * (context + 1) * kv_bytes_per_token(w.cfg, kv_dtype)
    return total


def fits(w: Any, batch: int, context: int, kv_dtype: str, with_baseline: bool) -> str | None:
    import torch

    free, _ = torch.cuda.mem_get_info()
    need = batch * (context + 64) * kv_bytes_per_token(w.cfg, kv_dtype) * (2 if with_baseline else 1)
    if need + HEADROOM_BYTES > free:
        return (f"needs {need / 1e9:.0f} GB of KV cache{' (ours + transformers)' if with_baseline else ''}, "
                f"{free / 1e9:.0f} GB free after the weights")
    return None


def measure_ours(w: Any, batch: int, context: int, kv_dtype: str, launch: Any, iters: int) -> tuple[Any, list[int]]:
    import torch

    from floorline.gpu.timing import TimingConfig, time_cuda
    from floorline.model.fast import FastDecoder, Sampling

    warm = 5
    dec = FastDecoder(w, max_batch=batch, max_len=context + warm + iters + 16, kv_dtype=kv_dtype, launch=launch)
    dec.set_context([context] * batch)
    dec.graphs[(batch, Sampling())] = graph = dec._capture(batch, Sampling())
    res = time_cuda(lambda i: graph.replay(), TimingConfig(warmup=warm, iters=iters, timeout_s=120))
    dec.record = []
    dec._step(batch, Sampling())  # one eager step, to count the experts this batch routes to
    hit = [int(torch.unique(ids).numel()) for ids in dec.record]
    dec.graphs.clear()  # the graph's private memory pool goes with it
    return res, hit


def ms_timing(res: Any) -> Any:
    """A harness TimingResult (us) as an evidence Timing in ms per token."""
    from floorline.evidence.schema import Timing

    s = [x / 1e3 for x in res.samples_us]
    t = res.to_model()
    return Timing(method=t.method, warmup=t.warmup, iterations=t.iterations, median=t.median / 1e3, min=t.min / 1e3,
                  p10=t.p10 / 1e3, p90=t.p90 / 1e3, max=t.max / 1e3, unit="ms", samples=s)


AB_RESERVE_S = 60.0  # seconds the batch-1 A/B (step_variants) needs on an H200, graph captures included


def run(model: str, layers: int | None, experts: int | None, batches: tuple[int, ...], contexts: tuple[int, ...],
        weight_dtype: str, kv_dtype: str, iters: int, baseline: bool, out_dir: Path | None, tune: bool,
        ceiling_tbps: float | None = None, deadline_s: float | None = None,
        progress: Any = lambda m: None, baseline_settings: tuple[str, ...] | None = None) -> dict[str, Any]:
    import time

    import torch

    from floorline.model.config import builtin
    from floorline.model.fast import LaunchConfigs
    from floorline.model.weights import random_weights

    if not torch.cuda.is_available():
        raise InputError("bench decode: needs a CUDA GPU (this machine has none)")
    if weight_dtype not in ("bf16", "fp8"):
        raise InputError(f"--weight-dtype: must be bf16 or fp8, got {weight_dtype!r}")
    if kv_dtype not in BENCH_KV_DTYPES:
        raise InputError(f"--kv-dtype: must be one of {', '.join(BENCH_KV_DTYPES)}, got {kv_dtype!r}")
    for b in batches:
        if not 1 <= b <= 64:
            raise InputError(f"--batch: each must be in 1..64, got {b}")
    t_start = time.monotonic()
    cfg = builtin(model).cut(layers, experts)
    if ceiling_tbps is None:
        from floorline.bench.hbm import read_ceiling

        progress("HBM read ceiling (same run)")
        hbm = read_ceiling(quick=True, progress=progress)
        ceiling_tbps, ceiling_src = hbm.tbps, f"floorline.bench.hbm read_ceiling (quick), {hbm.config}"
    else:
        ceiling_src = "given (ctx.shared hbm_read_ceiling_tbps)"
    progress(f"random {weight_dtype} weights for {cfg.name} ({cfg.num_hidden_layers} layers, {cfg.num_experts} experts)")
    w = random_weights(cfg, dtype=weight_dtype, device="cuda", seed=0)
    torch.cuda.synchronize()
    launch, tune_table, profile = LaunchConfigs(), {}, []
    from floorline.model.tune import pdl_works

    ok, why = pdl_works(w.device)
    progress(f"programmatic dependent launch (with L2 prefetch) in a CUDA graph: {why}")
    tune_table["pdl"] = {"works": ok, "detail": why}
    if not ok:  # try PDL alone before giving it up
        ok2, why2 = pdl_works(w.device, prefetch=False)
        progress(f"programmatic dependent launch without prefetch: {why2}")
        tune_table["pdl"]["without_prefetch"] = {"works": ok2, "detail": why2}
        launch = replace(launch, prefetch=False) if ok2 else replace(launch, pdl=False, prefetch=False)
    if tune:
        from floorline.model.tune import profile_step, tune_batch1

        launch, table = tune_batch1(w, progress, base=launch)
        tune_table.update(table)
        if 1 in batches and launch.pdl:
            launch, tune_table["step"] = choose_step(w, launch, min(contexts), kv_dtype, iters, progress, tune_table)
        if 1 in batches:
            progress("profile one batch-1 step, kernel by kernel")
            try:
                # without PDL: a PDL kernel's measured duration would include the time its programs
                # sit resident waiting on the previous kernel, and the per-kernel sums would overlap
                profile = profile_step(w, replace(launch, pdl=False), 1, min(contexts), kv_dtype=kv_dtype)
            except Exception as e:  # noqa: BLE001 - the profile is a diagnostic; the bench goes on without it
                progress(f"profile failed: {type(e).__name__}: {e}")
            gc.collect()
            torch.cuda.empty_cache()
    hf, hf_setting, hf_error = None, {}, None
    eager, eager_setting, eager_error = None, {}, None
    if baseline and weight_dtype == "bf16":
        from floorline.bench.decode_hf import BY_NAME, SETTINGS, choose_baseline

        # transformers' fastest setting that works, every try recorded; a run may name the settings to
        # try (each compiled attempt costs ~70 s of compile), and the packet lists the ones left out
        settings = SETTINGS if not baseline_settings else tuple(BY_NAME[n] for n in baseline_settings)
        hf, hf_setting = choose_baseline(w, progress, settings=settings)
        hf_setting["not_tried"] = [s.name for s in SETTINGS if s not in settings]
        if hf is None:
            hf_error = "; ".join(f"{t['setting']}: {t.get('reason', t['status'])}" for t in hf_setting["tried"])
        elif hf.setting.compile_mode is not None and 1 in batches:  # timed at the batch-1 headline only
            eager, eager_setting, eager_error = _eager_peer(w, progress)
    elif baseline:
        hf_error = "transformers runs bf16 weights only; no FP8 baseline"
    points, ab = [], {}
    wanted = [(b, c) for (b, c) in PRIORITY if b in batches and c in contexts]
    wanted += [(b, c) for b in batches for c in contexts if (b, c) not in wanted]
    for b, c in wanted:
        p = Point(b, c)
        points.append(p)
        if deadline_s is not None and time.monotonic() - t_start > deadline_s:
            p.skipped = "time budget of this run spent"
            continue
        p.skipped = fits(w, b, c, kv_dtype, hf is not None)
        if p.skipped and hf is not None and fits(w, b, c, kv_dtype, False) is None:
            p.skipped, p.hf_reason = None, "transformers' KV cache would not fit beside ours"
        if p.skipped:
            progress(f"batch {b} context {c}: skipped ({p.skipped})")
            continue
        progress(f"batch {b} context {c}: ours")
        res, p.experts_hit = measure_ours(w, b, c, kv_dtype, launch, iters)
        gc.collect()
        torch.cuda.empty_cache()
        p.timing = res
        p.ms = res.median / 1e3
        p.floor_bytes = step_bytes(w, p.experts_hit, b, c, kv_dtype)
        p.floor_ms = p.floor_bytes / (ceiling_tbps * 1e12) * 1e3
        if hf is not None and p.hf_reason is None:
            progress(f"batch {b} context {c}: transformers")
            try:
                p.hf_timing = hf.measure(b, c, max(3, iters // 10))
                p.hf_ms = p.hf_timing.median / 1e3
                p.hf_config = hf_setting
            except Exception as e:  # noqa: BLE001
                p.hf_reason = f"{type(e).__name__}: {str(e)[:200]}"
            gc.collect()
            torch.cuda.empty_cache()
        elif hf is None:
            p.hf_reason = hf_error or "baseline not requested"
        headline = b == 1 and c == min(contexts)
        if headline and (eager is not None or eager_error):
            p.hf_eager_reason = eager_error
            if eager is not None and p.hf_reason is not None:
                p.hf_eager_reason = f"not measured: {p.hf_reason}"
            elif eager is not None:
                progress(f"batch {b} context {c}: transformers eager")
                try:
                    p.hf_eager_timing = eager.measure(b, c, 3)
                    p.hf_eager_ms = p.hf_eager_timing.median / 1e3
                except Exception as e:  # noqa: BLE001 - the second peer is context; the packet says why it is missing
                    p.hf_eager_reason = f"{type(e).__name__}: {str(e)[:200]}"
                gc.collect()
                torch.cuda.empty_cache()
            p.hf_eager_config = eager_setting
        # the A/B re-captures the step ~6 times: run it only with that much of the budget left
        if tune and headline and (deadline_s is None or time.monotonic() - t_start < deadline_s - AB_RESERVE_S):
            ab = step_variants(w, c, kv_dtype, launch, iters, progress)
            # the step-level choice's runs are same-run variants too
            ab.update({f"step: {n}": ms for n, ms in (tune_table.get("step") or {}).get("ms_per_token", {}).items()})
        elif tune and headline:
            progress("same-run A/B skipped: the time budget of this run is spent")
        if out_dir is not None:
            p.packet = write_point(w, p, weight_dtype, kv_dtype, ceiling_tbps, ceiling_src, launch, tune_table,
                                   profile=profile if headline else [], out_dir=out_dir, ab=ab if headline else None)
    return {"config": cfg, "ceiling_tbps": ceiling_tbps, "points": points, "launch": launch, "tune": tune_table,
            "profile": profile, "ab": ab, "out_dir": out_dir, "baseline_setting": hf_setting, "baseline_error": hf_error,
            "eager_setting": eager_setting, "eager_error": eager_error}


EAGER_SETTING = "dynamic-eager"


def _eager_peer(w: Any, progress: Any) -> tuple[Any, dict[str, Any], str | None]:
    """transformers out of the box (DynamicCache, no compile), as issue 6 measured its 95.6 ms/token:
    timed beside the compiled baseline at the headline point, so the packet shows how far each peer is
    on the same weights in the same run. The compiled one stays *the* baseline (its fastest setting)."""
    from floorline.bench.decode_hf import BY_NAME, HFBaseline

    try:
        peer = HFBaseline(w, BY_NAME[EAGER_SETTING])
        return peer, peer.describe(), None
    except Exception as e:  # noqa: BLE001 - recorded in the packet
        reason = f"{type(e).__name__}: {str(e)[:200]}"
        progress(f"transformers {EAGER_SETTING} failed: {reason}")
        return None, {}, reason


STEP_CHOICES = ("PDL on every kernel", "PDL on every kernel, expert-down not prefetched",
                "PDL on every kernel, expert weights evict-first",
                "PDL on every kernel, expert-down not prefetched, expert weights evict-first", "PDL except the expert GEMVs",
                "PDL except the expert GEMVs, no L2 prefetch", "no PDL")


def choose_step(w: Any, launch: Any, context: int, kv_dtype: str, iters: int, progress: Any,
                tune_table: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
    """Which kernels launch with PDL, chosen on the whole batch-1 step (graph replay, ms per token):
    PDL can cost a kernel as much as it saves (the next kernel's waiting programs sit beside it), and
    only the whole step shows the net. Then the switches of step_flips, one at a time, and (with the
    tuner's table) the GEMV tiles it timed nearly as fast as its pick, each kept only if the step gets
    faster."""
    import torch

    # Session 5 (H200): every kernel under PDL 2.795 ms, all but the expert GEMVs 2.679, none 2.646. A
    # likely cause: a prefetch into L2 beside a 50 MB expert stream is evicted before it is read, so
    # those bytes cross HBM twice; the no-prefetch choice tests that.
    ef = {"gate_up": replace(launch.gate_up, evict_first=True), "down": replace(launch.down, evict_first=True)}
    variants = dict(zip(STEP_CHOICES, (replace(launch, pdl_experts=True),
                                       replace(launch, pdl_experts=True, expert_down_prefetch=False),
                                       replace(launch, pdl_experts=True, **ef),
                                       replace(launch, pdl_experts=True, expert_down_prefetch=False, **ef),
                                       replace(launch, pdl_experts=False),
                                       replace(launch, pdl_experts=False, prefetch=False), replace(launch, pdl=False)),
                        strict=True))
    ms: dict[str, float] = {}
    failed: dict[str, str] = {}

    def measure(name: str, v: Any) -> bool:
        """The step's ms/token with launch v into ms[name]; a launch that fails to build (a tile the
        compiler refuses in this step) goes into failed[name] instead, and the choice goes on."""
        variants[name] = v
        try:
            res, _ = measure_ours(w, 1, context, kv_dtype, v, iters)
        except Exception as e:  # noqa: BLE001 - one variant must not cost the bench its packets
            failed[name] = f"{type(e).__name__}: {str(e)[:200]}"
            progress(f"step choice, batch 1 context {context}: {name}: failed ({failed[name]})")
            return False
        finally:
            gc.collect()
            torch.cuda.empty_cache()
        ms[name] = res.median / 1e3
        progress(f"step choice, batch 1 context {context}: {name}: {ms[name]:.3f} ms/token")
        return True

    for name, v in list(variants.items()):
        measure(name, v)
    if not ms:
        raise RuntimeError(f"bench decode: every PDL setting of the step failed: {failed}")
    best = min(ms, key=ms.get)

    # then, one at a time on top of the best so far, each kept only if the step gets faster:
    # the one-block attention (DecodeConfig.one_tile, on by default) flipped, the dense GEMVs' and
    # router's weight tiles loaded before the PDL wait, expert-down's (GemvConfig.preload), the attention at
    # 8 warps (4 if it is at 8), the attention's tile at 128 tokens (64 if it is at 128)
    def trial(on: str, label: str, flip: Any) -> str:
        """Launch `on` with one thing changed: the name of the faster of it and the best so far."""
        name = f"{on}, {label}"
        return name if measure(name, flip) and ms[name] < ms[best] else best

    for i in range(len(step_flips(launch))):
        best = trial(best, *step_flips(variants[best])[i])
    # last, the GEMV tiles the tuner timed within IN_STEP_MARGIN of its pick, each in the whole step: the
    # tuner times a GEMV alone, but o streams while the attention runs and the expert GEMVs ramp after
    # the router, and only the step shows which tile does that best
    for cls in IN_STEP_CLASSES:
        base = best  # a class's runner-ups all go on the launch the classes before it left
        for label, flip in gemv_runner_ups(variants[base], tune_table or {}, (cls,)):
            best = trial(base, label, flip)
    info = {"chosen": best, "ms_per_token": ms, "context": context}
    if failed:
        info["failed"] = failed
    return variants[best], info


IN_STEP_CLASSES = ("gate_up", "down", "o", "qkv")  # the GEMVs whose neighbours change their time most
IN_STEP_MARGIN = 0.06  # runner-ups within 6% of the tuner's pick (session 10, H100: 3-4 per class)
IN_STEP_MAX = 2  # per class: ~3 s of device time each


def gemv_runner_ups(launch: Any, tune_table: dict[str, Any], classes: tuple[str, ...] = IN_STEP_CLASSES
                    ) -> list[tuple[str, Any]]:
    """(label, launch) for each GEMV tile the tuner timed within IN_STEP_MARGIN of its pick, the two
    nearest per class, with the launch's own preload / evict-first flags (the step choice set those)."""
    from floorline.kernels.gemv import GemvConfig

    out = []
    for cls in classes:
        t = tune_table.get(cls) or {}
        rows = sorted((r for r in t.get("candidates", []) if "us" in r), key=lambda r: r["us"])
        if not rows:
            continue
        best_us, cur = rows[0]["us"], getattr(launch, cls)
        picked = 0
        for r in rows:
            c = replace(GemvConfig(**r["config"]), preload=cur.preload, evict_first=cur.evict_first)
            if c == cur or r["us"] > best_us * (1 + IN_STEP_MARGIN) or picked == IN_STEP_MAX:
                continue
            picked += 1
            label = (f"{cls} {c.block_n}x{c.block_k} {c.num_warps} warps {c.num_stages} stages split {c.split_k}"
                     f"{' double-buffered' if c.double_buffer else ''} ({r['us']:.2f} us alone)")
            out.append((label, replace(launch, **{cls: c})))
    return out


def step_flips(launch: Any) -> list[tuple[str, Any]]:
    """The session 8 switches choose_step tries after the PDL choice, each as (label, launch with it
    flipped); choose_step rebuilds the list from its best launch so far, so the i-th flip lands on it."""
    one_tile = not launch.attention.one_tile
    pre = not launch.qkv.preload
    dense = {k: replace(getattr(launch, k), preload=pre) for k in ("qkv", "o", "lm_head", "router")}
    return [(f"attention one tile {'on' if one_tile else 'off'}",
             replace(launch, attention=replace(launch.attention, one_tile=one_tile))),
            (f"dense GEMV + router weights preloaded {'on' if pre else 'off'}", replace(launch, **dense)),
            (f"expert-down weights preloaded {'off' if launch.down.preload else 'on'}",
             replace(launch, down=replace(launch.down, preload=not launch.down.preload))),
            # LaunchConfigs.prefetch_next is no longer tried here: it lost by 164-194 us on an H100 in session 10
            # (docs/notes/decode.md); decode_timeline's next-qkv-* variants still measure it
            # session 9: the one-tile attention holds its K/V tile in registers; 8 warps halve each thread's share
            (f"attention {_other_warps(launch.attention.num_warps)} warps",
             replace(launch, attention=replace(launch.attention, num_warps=_other_warps(launch.attention.num_warps)))),
            # session 10: at 1K a 128-token tile is still one tile (9 splits, not 17): twice the math after
            # the PDL wait in half the programs, and a combine over half the splits
            (f"attention {_other_block(launch.attention.block_n)}-token tile",
             replace(launch, attention=replace(launch.attention, block_n=_other_block(launch.attention.block_n))))]


def _other_block(n: int) -> int:
    return 64 if n == 128 else 128


def _other_warps(n: int) -> int:
    return 4 if n == 8 else 8


def step_variants(w: Any, context: int, kv_dtype: str, launch: Any, iters: int, progress: Any) -> dict[str, float]:
    """Same-run A/B at batch 1, each the tuned launch with one thing taken back, ms per token: the
    router as session 4 ran it (2 x 2048, 4 warps, no split-K), the router's top-k as its own kernel,
    the expert GEMVs without double buffering, the attention's split merge inside the kernel (the PDL
    choices were measured by choose_step). The persistent gate-up + down launch is not here until it has
    run: a grid-barrier bug would spin out its bounded wait in every layer, and the bench's time limit would
    take the packets with it; decode_timeline's `moe-persistent` variant measures it, last, after them."""
    import torch

    from floorline.kernels.gemv import GemvConfig

    out = {}
    att = launch.attention
    single = (replace(launch.gate_up, double_buffer=False), replace(launch.down, double_buffer=False))
    for name, variant in (
            ("fused_b1, router 2 x 2048, 4 warps, split-K 1",
             replace(launch, router=GemvConfig(block_n=2, block_k=2048, num_warps=4, num_stages=4))),
            ("fused_b1, router top-k as its own kernel",
             replace(launch, router_one_launch=False, router=replace(launch.router, split_k=1))),
            ("fused_b1, expert GEMVs single-buffered", replace(launch, gate_up=single[0], down=single[1])),
            ("fused_b1, attention split merge in-kernel",
             replace(launch, attention=replace(att, variant="v2", fuse_combine=True))),
            ):
        if variant == launch:
            continue  # the tuned launch already is this variant
        try:
            res, _ = measure_ours(w, 1, context, kv_dtype, variant, iters)
            out[name] = res.median / 1e3
            progress(f"A/B batch 1 context {context}: {name}: {out[name]:.3f} ms/token")
        except Exception as e:  # noqa: BLE001 - a diagnostic; the bench goes on without it
            progress(f"A/B {name} failed: {type(e).__name__}: {str(e)[:200]}")
        gc.collect()
        torch.cuda.empty_cache()
    return out


def write_point(w: Any, p: Point, weight_dtype: str, kv_dtype: str, ceiling: float, ceiling_src: str, launch: Any,
                tune_table: dict, profile: list | None = None, out_dir: Path | None = None,
                ab: dict[str, float] | None = None) -> Path:
    import json

    from floorline.evidence.schema import Baseline, Floor
    from floorline.evidence.store import artifact, new_packet, write_packet
    from floorline.gpu.probe import device_slug

    cfg = w.cfg
    ours = ms_timing(p.timing)
    if p.hf_timing is not None:
        base = Baseline(name="transformers", version=p.hf_config.get("version"), timing=ms_timing(p.hf_timing),
                        ratio=p.hf_ms / p.ms, config=p.hf_config)
    else:
        base = Baseline(name="transformers", status="skipped", reason=p.hf_reason)
    bases = [base]
    if p.hf_eager_timing is not None:
        bases.append(Baseline(name="transformers-eager", version=p.hf_eager_config.get("version"),
                              timing=ms_timing(p.hf_eager_timing), ratio=p.hf_eager_ms / p.ms, config=p.hf_eager_config))
    elif p.hf_eager_reason:
        bases.append(Baseline(name="transformers-eager", status="skipped", reason=p.hf_eager_reason))
    notes = [
        f"tokens/s: {p.batch * 1e3 / p.ms:.1f} (batch {p.batch} x 1000 / ms per step)",
        f"distinct experts read per MoE layer this step: min {min(p.experts_hit, default=0)}, "
        f"max {max(p.experts_hit, default=0)}, mean {sum(p.experts_hit) / max(1, len(p.experts_hit)):.1f}",
        "context K/V is synthetic (random values at every cached position); decode reads the same bytes",
        "one CUDA graph replay per token (the whole step: 48-layer decoder, LM head, greedy argmax)",
        f"HBM ceiling: {ceiling_src}",
    ]
    step = "fused batch-1 step (RMSNorm in the GEMVs, atomic residual adds)" if p.batch == 1 and launch.fused_b1 else "11-kernel step"
    notes.append(f"{step}; programmatic dependent launch {'on' if launch.pdl else 'off'}")
    if p.hf_eager_ms:
        notes.append(f"second peer, transformers eager ({p.hf_eager_config.get('setting')}: DynamicCache, no compile, "
                     f"the setting of issue 6's 95.6 ms/token): {p.hf_eager_ms:.2f} ms/token, "
                     f"{p.hf_eager_ms / p.ms:.1f}x ours; the baseline is the fastest setting above")
    if ab:
        notes.append("same-run variants, ms/token: " + ", ".join(f"{k} {v:.3f}" for k, v in ab.items()))
    if p.context > cfg.max_position_embeddings:
        notes.append(f"context {p.context} exceeds max_position_embeddings {cfg.max_position_embeddings} "
                     "(Qwen3 reaches 128K with YaRN); the bytes and the kernels are the same")
    if cfg.cut_down:
        notes.append("cut down: " + ", ".join(cfg.cut_down))
    directory = out_dir or Path("results") / device_slug()
    kv = "" if kv_dtype == "bf16" else f"-kv{kv_dtype}"  # bf16 keeps the names of the packets before session 11
    name = f"bench-decode-{cfg.name}-L{cfg.num_hidden_layers}-E{cfg.num_experts}-{weight_dtype}{kv}-b{p.batch}-c{p.context}"
    artifacts = []
    if profile or tune_table:
        directory.mkdir(parents=True, exist_ok=True)
        side = directory / f"{name}.profile.json"
        side.write_text(json.dumps({"kernels_per_step": profile or [], "gemv_tuning": tune_table,
                                    "same_run_variants_ms_per_token": ab or {}}, indent=1) + "\n")
        artifacts.append(artifact(side, directory))
        if profile:
            total = sum(r["us_per_step"] for r in profile)
            top = ", ".join(f"{r['kernel'].split('(')[0]} {r['us_per_step']:.0f} us" for r in profile[:6])
            notes.append(f"eager-step kernel profile (device time, batch 1, PDL off so kernels do not overlap): "
                         f"{total:.0f} us in kernels per step; {top}")
    packet = new_packet(
        "bench.decode",
        params={"model": cfg.name, "layers": cfg.num_hidden_layers, "experts": cfg.num_experts, "batch": p.batch,
                "context": p.context, "weight_dtype": weight_dtype, "kv_dtype": kv_dtype, "tp": 1,
                "tokens_per_s": p.batch * 1e3 / p.ms, "launch": launch.as_dict()},
        timing=ours,
        floor=Floor(model="bytes per step (weights incl. distinct experts hit + KV read) / same-run HBM read ceiling",
                    bytes=p.floor_bytes, ceiling=ceiling, ceiling_unit="TB/s", value=p.floor_ms,
                    fraction=p.floor_ms / p.ms),
        baselines=bases,
        artifacts=artifacts,
        notes=notes,
    )
    return write_packet(packet, directory, name)


def summary_rows(result: dict[str, Any]) -> list[list[Any]]:
    rows = []
    for p in result["points"]:
        if p.skipped:
            rows.append([p.batch, p.context, "-", "-", "-", "-", "-", f"skipped: {p.skipped}", "-"])
            continue
        ratio = f"{p.hf_ms / p.ms:.1f}x" if p.hf_ms else (p.hf_reason or "-")
        eager = f"{p.hf_eager_ms / p.ms:.1f}x ({p.hf_eager_ms:.1f} ms)" if p.hf_eager_ms else (p.hf_eager_reason or "-")
        rows.append([p.batch, p.context, f"{p.ms:.3f}", f"{p.batch * 1e3 / p.ms:.1f}", f"{p.floor_ms:.3f}",
                     f"{p.floor_ms / p.ms:.1%}", f"{p.hf_ms:.1f}" if p.hf_ms else "-", ratio, eager])
    return rows


# "vs transformers": its fastest setting that works (the baseline); "vs eager": out of the box, headline only
HEADERS = ["batch", "context", "ms/token", "tokens/s", "floor ms", "of floor", "transformers ms", "vs transformers",
           "vs eager"]


def isfinite(x: float | None) -> bool:
    return x is not None and math.isfinite(x)
