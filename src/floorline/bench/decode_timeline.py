"""Where a batch-1 decode step's time goes as it really runs: inside its CUDA graph, PDL on.

The bench's per-kernel profile runs eager steps with PDL off, so each kernel there pays its own
launch and DRAM ramp. Under PDL a kernel's programs become resident while the previous kernel still
runs, so its recorded duration includes time spent waiting: durations overlap and do not add up.
What does add up is each kernel's *increment*: how much later the step's last finished kernel ends
once this kernel has finished (end_i - max(end_j, j < i)). The increments of one step sum to the
step's span, and the span's gap to the graph replay time is the graph's own launch cost.

Kernels come from torch.profiler (CUPTI), which records every kernel node of a replayed graph.
"""

from __future__ import annotations

import json
import statistics
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

from floorline.errors import InputError


def kernel_events(trace: dict[str, Any]) -> list[dict[str, Any]]:
    """Kernel events of a chrome trace (torch.profiler export), sorted by start: name, ts, dur (us)."""
    ev = [e for e in trace.get("traceEvents", []) if e.get("cat") == "kernel" and "dur" in e]
    ev.sort(key=lambda e: (float(e["ts"]), float(e["dur"])))
    return [{"name": e["name"], "ts": float(e["ts"]), "dur": float(e["dur"])} for e in ev]


def split_steps(events: list[dict[str, Any]], steps: int) -> list[list[dict[str, Any]]]:
    """The kernels of `steps` identical replays, one list per replay."""
    if steps < 1 or len(events) % steps:
        raise InputError(f"timeline: {len(events)} kernels do not split into {steps} identical steps")
    n = len(events) // steps
    out = [events[i * n:(i + 1) * n] for i in range(steps)]
    names = [e["name"] for e in out[0]]
    for s in out[1:]:
        if [e["name"] for e in s] != names:
            raise InputError("timeline: the replays ran different kernel sequences")
    return out


def increments(step: list[dict[str, Any]]) -> list[float]:
    """Per kernel, how much it pushes the step's finish line out (us); the sum is the step's span."""
    out, finish = [], step[0]["ts"]
    for e in step:
        end = e["ts"] + e["dur"]
        out.append(max(0.0, end - finish))
        finish = max(finish, end)
    return out


def summarize(steps: list[list[dict[str, Any]]], short: int = 40, anchor: str = "_attn_kernel") -> dict[str, Any]:
    """Per kernel name: launches per step, median-over-steps of summed increments and durations; the
    span; and one middle MoE layer's kernels in order (start, duration, increment relative to it)."""
    per_step = []
    for s in steps:
        inc = increments(s)
        agg: dict[str, dict[str, float]] = {}
        for e, d in zip(s, inc, strict=True):
            a = agg.setdefault(e["name"][:short], {"launches": 0, "increment_us": 0.0, "duration_us": 0.0})
            a["launches"] += 1
            a["increment_us"] += d
            a["duration_us"] += e["dur"]
        per_step.append((s[-1]["ts"] + s[-1]["dur"] - s[0]["ts"], agg, inc))
    names = list(per_step[0][1])
    kernels = [{"kernel": n, "launches_per_step": per_step[0][1][n]["launches"],
                "increment_us": statistics.median(p[1][n]["increment_us"] for p in per_step),
                "duration_us": statistics.median(p[1][n]["duration_us"] for p in per_step)} for n in names]
    kernels.sort(key=lambda r: -r["increment_us"])
    mid = steps[len(steps) // 2]
    inc = per_step[len(steps) // 2][2]
    # a middle layer: from the kernel before one attention launch (the qkv GEMV) to the one before the next
    idx = [i for i, e in enumerate(mid) if e["name"].startswith(anchor)]
    layer = []
    if len(idx) >= 3 and idx[0] >= 1:
        j = len(idx) // 2
        a, b = idx[j] - 1, idx[j + 1] - 1
        t0 = mid[a]["ts"]
        layer = [{"kernel": e["name"][:short], "start_us": e["ts"] - t0, "duration_us": e["dur"], "increment_us": d}
                 for e, d in zip(mid[a:b], inc[a:b], strict=True)]
    return {"span_us": statistics.median(p[0] for p in per_step), "kernels": kernels, "one_layer": layer}


def launch_variants(base: Any) -> dict[str, Any]:
    """Named LaunchConfigs variants a timeline run can compare (names are what --variants takes)."""
    from floorline.kernels.gemv import GemvConfig
    from floorline.kernels.moe_b1_persistent import MoePersistentConfig

    att = base.attention
    return {
        "tuned": base,
        "no-pdl": replace(base, pdl=False),
        "no-prefetch": replace(base, prefetch=False),
        "pdl-experts": replace(base, pdl_experts=True),
        "no-pdl-experts": replace(base, pdl_experts=False),
        "pdl-all-no-down-prefetch": replace(base, pdl=True, pdl_experts=True, expert_down_prefetch=False),
        "pdl-all-evict-first": replace(base, pdl=True, pdl_experts=True, gate_up=replace(base.gate_up, evict_first=True),
                                       down=replace(base.down, evict_first=True)),
        "topk-own-kernel": replace(base, router_one_launch=False, router=replace(base.router, split_k=1)),
        "router-session4": replace(base, router=GemvConfig(block_n=2, block_k=2048, num_warps=4, num_stages=4)),
        "single-buffered": replace(base, gate_up=replace(base.gate_up, double_buffer=False),
                                   down=replace(base.down, double_buffer=False)),
        "rope-own-kernel": replace(base, attn_rope=False),
        "attn-fused-combine": replace(base, attention=replace(att, variant="v2", fuse_combine=True)),
        "attn-splits-256": replace(base, attention=replace(att, min_split_tokens=256)),
        "attn-1-split-fused": replace(base, attention=replace(att, variant="v2", num_splits=1, fuse_combine=True)),
        # session 7: gate-up + down as one launch with a grid barrier (kernels/moe_b1_persistent.py)
        "moe-persistent": replace(base, moe_persistent=MoePersistentConfig()),
        # session 8: a split of one block loads its K/V before the PDL wait and the q prologue
        "attn-one-tile": replace(base, attention=replace(att, one_tile=not att.one_tile)),
        # session 8: qkv / o / LM head / router weight tiles loaded into registers before the PDL wait
        "gemv-preload": replace(base, **{k: replace(getattr(base, k), preload=not getattr(base, k).preload)
                                         for k in ("qkv", "o", "lm_head", "router")}),
        "down-preload": replace(base, down=replace(base.down, preload=not base.down.preload)),
        # session 9: the next layer's qkv weight into L2 during the attention (off <-> l2, off <-> evict-last)
        "next-qkv-l2": replace(base, prefetch_next="off" if base.prefetch_next == "l2" else "l2"),
        "next-qkv-evict-last": replace(base, prefetch_next="off" if base.prefetch_next == "evict-last" else "evict-last"),
        "attn-8-warps": replace(base, attention=replace(att, num_warps=4 if att.num_warps == 8 else 8)),
        "attn-128-tile": replace(base, attention=replace(att, block_n=64 if att.block_n == 128 else 128)),
        # session 11: one dense GEMV's preload at a time. In session 10's timeline (H100) the attention took
        # 8.2 us after the qkv GEMV finished with every dense preload on and 6.3 with all four off, while o's
        # increment rose 2.7 -> 5.5: o's 16.8 MB register preload, issued while the attention runs, is the
        # suspect; qkv's is the other one that overlaps it
        "o-preload": replace(base, o=replace(base.o, preload=not base.o.preload)),
        "qkv-preload": replace(base, qkv=replace(base.qkv, preload=not base.qkv.preload)),
    }


def timeline(w: Any, launch: Any, context: int, replays: int = 5, iters: int = 50, kv_dtype: str | None = None
             ) -> dict[str, Any]:
    """One batch-1 decode step's graph at `context` tokens: replay time (CUDA events) and the kernel
    timeline of `replays` profiled replays."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    from floorline.gpu.timing import TimingConfig, time_cuda
    from floorline.model.fast import DEFAULT_KV_DTYPE, FastDecoder, Sampling

    dec = FastDecoder(w, max_batch=1, max_len=context + iters + replays + 32, kv_dtype=kv_dtype or DEFAULT_KV_DTYPE,
                      launch=launch)
    dec.set_context([context])
    graph = dec._capture(1, Sampling())
    res = time_cuda(lambda i: graph.replay(), TimingConfig(warmup=5, iters=iters, timeout_s=120))
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(replays):
            graph.replay()
        torch.cuda.synchronize()
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "trace.json"
        prof.export_chrome_trace(str(p))
        trace = json.loads(p.read_text())
    dec.graphs.clear()
    out = summarize(split_steps(kernel_events(trace), replays))
    out["replay_us"] = res.median
    out["launches_per_step"] = sum(k["launches_per_step"] for k in out["kernels"])
    return out


def run_timeline(model: str, layers: int | None, context: int, launch_from: Path | None, variants: list[str],
                 out: Path | None, progress: Any = print) -> dict[str, Any]:
    """Timelines of the batch-1 step for each named variant of a launch (a packet's tuned one, or tuned
    here), written to `out` after each variant so a cut-off run keeps what it measured."""
    import gc

    import torch

    from floorline.model.config import builtin
    from floorline.model.fast import LaunchConfigs

    if context < 1:
        raise InputError(f"--context: must be >= 1, got {context}")
    names = launch_variants(LaunchConfigs())
    bad = [v for v in variants if v not in names]
    if bad or not variants:
        raise InputError(f"--variants: each must be one of {', '.join(names)}, got {','.join(variants)!r}")
    base, kv_dtype = None, None
    if launch_from is not None:
        try:
            params = json.loads(Path(launch_from).read_text())["params"]
            base = LaunchConfigs.from_dict(params["launch"])
            kv_dtype = params.get("kv_dtype", "bf16")  # the packet's cache (packets before session 11: bf16)
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise InputError(f"--launch-from: {launch_from} is not a bench.decode packet with params.launch "
                             f"({type(e).__name__})") from None
    if not torch.cuda.is_available():
        raise InputError("bench decode-timeline: needs a CUDA GPU (this machine has none)")
    from floorline.model.weights import random_weights

    cfg = builtin(model).cut(layers, None)
    progress(f"random bf16 weights for {cfg.name} ({cfg.num_hidden_layers} layers)")
    w = random_weights(cfg, dtype="bf16", device="cuda", seed=0)
    if base is None:
        from floorline.model.tune import tune_batch1

        base, _ = tune_batch1(w, progress)
    known = launch_variants(base)
    result: dict[str, Any] = {"model": cfg.name, "layers": cfg.num_hidden_layers, "context": context,
                              "kv_dtype": kv_dtype or "default",
                              "base_launch": base.as_dict(), "variants": {}}
    for name in variants:
        try:
            r = timeline(w, known[name], context, kv_dtype=kv_dtype)
        except Exception as e:  # noqa: BLE001 - one failing variant must not lose the others
            r = {"error": f"{type(e).__name__}: {str(e)[:300]}"}
        result["variants"][name] = r
        if "error" in r:
            progress(f"{name}: {r['error']}")
        else:
            progress(f"{name}: replay {r['replay_us']:.1f} us, span {r['span_us']:.1f} us, "
                     f"{r['launches_per_step']} kernels")
        if out is not None:
            Path(out).write_text(json.dumps(result, indent=1) + "\n")
        gc.collect()
        torch.cuda.empty_cache()
    return result


def main(argv: list[str] | None = None) -> None:
    """python -m floorline.bench.decode_timeline --launch-from PACKET.json [--variants a,b] --out FILE
    (the same as `floorline bench decode-timeline`)."""
    import argparse

    ap = argparse.ArgumentParser(description=main.__doc__)
    ap.add_argument("--model", default="qwen3-30b-a3b")
    ap.add_argument("--layers", type=int, default=None)
    ap.add_argument("--context", type=int, default=1024)
    ap.add_argument("--launch-from", help="a bench.decode packet whose params.launch to start from (else tune)")
    ap.add_argument("--variants", default="tuned")
    ap.add_argument("--out", required=True)
    a = ap.parse_args(argv)
    res = run_timeline(a.model, a.layers, a.context, Path(a.launch_from) if a.launch_from else None,
                       [v for v in a.variants.split(",") if v], Path(a.out))
    for name, r in res["variants"].items():
        for k in r.get("kernels", [])[:8]:
            print(f"  {name}: {k['kernel']:<40} {k['launches_per_step']:4d}x  inc {k['increment_us']:8.1f}  "
                  f"dur {k['duration_us']:8.1f}")


if __name__ == "__main__":
    main()
