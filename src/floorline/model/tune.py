"""Pick GEMV launch shapes on the device, on the model's own weights, by timing a few candidates,
and profile one decode step kernel by kernel.

A small fixed candidate list per weight class (not a search): each candidate compiles once, so the
list is what keeps the tuning inside tens of seconds. Every candidate is timed as 20 launches inside
one CUDA graph, as the decode step runs them (eager timing of a ~10 us kernel measures the Python
launch, not the kernel). Split-K candidates apply where the consumer sums partials (o-proj and
expert-down into add_rmsnorm, or in the fused batch-1 step, atomics into the residual); the gate-up +
SwiGLU epilogue is not linear, so it never splits. With `fused` each candidate runs exactly as the
fused batch-1 step launches it (RMSNorm folded in, atomic accumulation, PDL when asked).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from floorline.kernels.gemv import GemvConfig, gemv
from floorline.kernels.moe_gemv import moe_gemv, moe_gemv_b1
from floorline.kernels.router_topk import router_b1
from floorline.model.fast import LaunchConfigs


def _c(bn: int, bk: int, warps: int = 4, stages: int = 3, split: int = 1, dbuf: bool = False) -> GemvConfig:
    return GemvConfig(block_n=bn, block_k=bk, num_warps=warps, num_stages=stages, split_k=split, double_buffer=dbuf)


CANDIDATES = {
    "qkv": (_c(16, 256), _c(8, 512), _c(4, 1024, 4, 4), _c(8, 256, 4, 4), _c(32, 256, 8), _c(2, 2048, 4, 4),
            _c(4, 2048, 8, 4), _c(8, 2048, 8)),
    "o": (_c(8, 512, 4, 3, 2), _c(16, 256, 4, 3, 2), _c(8, 256, 4, 4, 4), _c(4, 1024, 4, 4), _c(4, 1024, 4, 4, 2),
          _c(2, 2048, 4, 4, 2), _c(8, 512, 4, 4, 4), _c(8, 2048, 8, 3, 2)),
    "lm_head": (_c(4, 1024, 4, 4), _c(8, 512), _c(16, 256), _c(2, 2048, 4, 4), _c(8, 2048, 8)),
    # a plain register load is not software-pipelined, so a program has one K tile in flight: wide K
    # tiles (a whole 2048-wide row per step) put more bytes in flight per SM
    "gate_up": (_c(8, 512), _c(16, 256), _c(4, 512, 4, 4), _c(2, 1024, 4, 4), _c(4, 256, 4, 4), _c(2, 512, 4, 4),
                _c(1, 2048, 4, 4), _c(2, 2048, 8, 4), _c(4, 2048, 8, 4),
                # two K tiles in flight per program (GemvConfig.double_buffer); sm_90: 167 / 96 / 96
                # registers, no spills, so 3+ programs still fit on an SM
                _c(16, 256, 4, 3, 1, True), _c(8, 256, 4, 3, 1, True), _c(16, 128, 4, 3, 1, True),
                _c(4, 512, 4, 3, 1, True)),
    "down": (_c(16, 256), _c(8, 256, 4, 4), _c(8, 128, 4, 4, 3), _c(16, 128, 4, 3, 2), _c(8, 128, 4, 4, 2),
             _c(8, 128, 4, 3, 4), _c(4, 256, 4, 4, 2), _c(4, 1024, 4, 4), _c(8, 1024, 8, 4),
             _c(8, 256, 4, 3, 1, True), _c(16, 128, 4, 3, 1, True), _c(8, 128, 4, 3, 2, True)),
    # split-K (at E 128, H 2048: one K tile per slice, 128-512 programs of 1-4 KB) only in the one-launch
    # router_b1, which sums the slices itself; the GEMV-then-top-k router paths refuse it (error rows).
    # One warp: the last program's top-k reductions then need no barriers (H200: 3.6 us against 5.8)
    "router": (_c(4, 1024, 4, 4), _c(4, 512, 4, 4), _c(8, 256), _c(2, 1024, 4, 4), _c(2, 2048, 4, 4),
               _c(4, 256, 1, 4, 8), _c(2, 256, 1, 4, 8), _c(2, 512, 1, 4, 4), _c(4, 512, 1, 4, 4),
               _c(2, 1024, 1, 4, 2)),
}


def tune_batch1(w: Any, progress: Any = lambda m: None, base: LaunchConfigs = LaunchConfigs()
                ) -> tuple[LaunchConfigs, dict[str, Any]]:
    """Best candidate per weight class at batch 1, and the timings (us per launch) behind each choice.
    base.fused_b1 / base.pdl: time the kernels as the fused step launches them."""
    import torch

    from floorline.gpu.timing import TimingConfig, time_cuda

    cfg, L = w.cfg, next((x for x in w.layers if x.is_moe), w.layers[0])
    dev = w.device
    g = torch.Generator(device=dev)
    g.manual_seed(0)
    H = cfg.hidden_size
    x = torch.randn(1, H, device=dev, generator=g)
    xo = torch.randn(1, cfg.q_size, device=dev, generator=g)
    E, k = L.gate_up.w.shape[0], (cfg.num_experts_per_tok if L.is_moe else 1)
    inter = L.gate_up.w.shape[1] // 2
    slot_e = torch.randperm(E, device=dev, generator=g)[:k].to(torch.int32)
    act = torch.randn(k, inter, device=dev, generator=g)
    wts = torch.rand(k, device=dev, generator=g)

    def out(*shape: int) -> Any:
        return torch.empty(*shape, device=dev)

    # Each of a graph's 20 launches reads another layer's weights (as a decode step does): one layer's
    # qkv (21 MB) would otherwise stay in the 50 MB L2 between launches and flatter the candidate.
    Ls = [y for y in w.layers if y.is_moe] or list(w.layers)
    fused = base.fused_b1
    pdl = base.pdl and torch.cuda.get_device_capability(dev)[0] >= 9
    pf = base.prefetch
    eps = cfg.rms_norm_eps
    res = torch.randn(1, H, device=dev, generator=g)
    if fused:
        cases = {
            "qkv": lambda c, i: gemv(x, Ls[i % len(Ls)].qkv.w, out(1, L.qkv.w.shape[0]), Ls[i % len(Ls)].qkv.scale, c,
                                     norm=(L.attn_norm, eps), pdl=pdl, prefetch=pf),
            "o": lambda c, i: gemv(xo, Ls[i % len(Ls)].o.w, res, Ls[i % len(Ls)].o.scale, c, accumulate=True, pdl=pdl,
                                   prefetch=pf),
            "lm_head": lambda c, i: gemv(x, w.lm_head, out(1, cfg.vocab_size), None, c, norm=(w.norm, eps), pdl=pdl,
                                         prefetch=pf),
            "gate_up": lambda c, i: moe_gemv_b1(x, Ls[i % len(Ls)].gate_up.w, slot_e, out(k, inter),
                                                scale=Ls[i % len(Ls)].gate_up.scale, swiglu=True,
                                                norm=(L.mlp_norm, eps), pdl=pdl, cfg=c),
            "down": lambda c, i: moe_gemv_b1(act, Ls[i % len(Ls)].down.w, slot_e, res, scale=Ls[i % len(Ls)].down.scale,
                                             slot_weights=wts, accumulate=True, pdl=pdl, cfg=c),
        }
        if L.router is not None:
            ticket = torch.zeros(1, dtype=torch.int32, device=dev)
            ids, rw = torch.empty(1, k, dtype=torch.int32, device=dev), out(1, k)
            if base.router_one_launch:
                cases["router"] = lambda c, i: router_b1(x, Ls[i % len(Ls)].router, k, cfg.norm_topk_prob, ids, rw,
                                                         out(1, E) if c.split_k == 1 else out(c.split_k, E + 1),
                                                         ticket, norm=(L.mlp_norm, eps), pdl=pdl, prefetch=pf,
                                                         gemv_cfg=c)
            else:
                cases["router"] = lambda c, i: gemv(x, Ls[i % len(Ls)].router, out(1, E), None, c,
                                                    norm=(L.mlp_norm, eps), pdl=pdl, prefetch=pf)
    else:
        plain = _unfused_cases(w, L, x, xo, slot_e, act, wts, k, inter, E, out)
        cases = {name: (lambda c, i, f=f: f(c)) for name, f in plain.items()}
    chosen, table = {}, {}
    for name, run in cases.items():
        best, best_us, rows = None, float("inf"), []
        for c in CANDIDATES[name]:
            try:
                us = time_cuda(lambda i, c=c, run=run: run(c, i), TimingConfig(warmup=3, iters=10, graph=True, ops_per_graph=20, timeout_s=30)).median
            except Exception as e:  # noqa: BLE001 - a candidate that fails to compile is skipped, and said so
                rows.append({"config": c.__dict__, "error": f"{type(e).__name__}: {str(e)[:120]}"})
                continue
            rows.append({"config": c.__dict__, "us": us})
            if us < best_us:
                best, best_us = c, us
        chosen[name] = best or getattr(base, name)
        table[name] = {"chosen": chosen[name].__dict__, "us": best_us, "candidates": rows}
        progress(f"tune {name}: {best_us:.2f} us with {chosen[name]}")
    return replace(base, **chosen), table


def _unfused_cases(w: Any, L: Any, x: Any, xo: Any, slot_e: Any, act: Any, wts: Any, k: int, inter: int, E: int,
                   out: Any) -> dict[str, Any]:
    """The 11-kernel step's launches (batch > 1 layout at batch 1; LaunchConfigs(fused_b1=False))."""
    cfg, H = w.cfg, w.cfg.hidden_size
    cases = {
        "qkv": lambda c: gemv(x, L.qkv.w, out(1, L.qkv.w.shape[0]), L.qkv.scale, c),
        "o": lambda c: gemv(xo, L.o.w, out(1, c.split_k, H) if c.split_k > 1 else out(1, H), L.o.scale, c),
        "lm_head": lambda c: gemv(x, w.lm_head, out(1, cfg.vocab_size), None, c),
        "gate_up": lambda c: moe_gemv(x, L.gate_up.w, slot_e, out(k, inter), tokens=1, scale=L.gate_up.scale,
                                      swiglu=True, cfg=c),
        "down": lambda c: moe_gemv(act, L.down.w, slot_e, out(k * c.split_k, H), tokens=1, scale=L.down.scale,
                                   slot_weights=wts, cfg=c),
    }
    if L.router is not None:
        cases["router"] = lambda c: gemv(x, L.router, out(1, E), None, c)
    return cases


def profile_step(w: Any, launch: LaunchConfigs, batch: int, context: int, steps: int = 3,
                 kv_dtype: str | None = None) -> list[dict[str, Any]]:
    """Device time per kernel name over eager decode steps (torch.profiler / CUPTI), per step;
    kv_dtype: the cache the profiled step stores (default: the decoder's)."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    from floorline.model.fast import DEFAULT_KV_DTYPE, FastDecoder, Sampling

    dec = FastDecoder(w, max_batch=batch, max_len=context + steps + 8, kv_dtype=kv_dtype or DEFAULT_KV_DTYPE,
                      launch=launch, use_graph=False)
    dec.set_context([context] * batch)
    dec._step(batch, Sampling())  # compile outside the profile
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(steps):
            dec._step(batch, Sampling())
        torch.cuda.synchronize()
    rows = []
    for ev in prof.key_averages():
        dev_us = getattr(ev, "device_time_total", None) or getattr(ev, "cuda_time_total", 0)
        if dev_us:
            rows.append({"kernel": ev.key[:80], "us_per_step": dev_us / steps, "launches_per_step": ev.count / steps})
    rows.sort(key=lambda r: -r["us_per_step"])
    return rows


def pdl_works(device: Any, prefetch: bool = True) -> tuple[bool, str]:
    """Programmatic dependent launch inside a captured CUDA graph, checked once on this device: two
    chained PDL GEMVs (the second reads the first's output; with prefetch, both prefetch their weights
    into L2 before waiting) replayed from a graph must equal the same chain launched plainly.
    (False, why) when the device, driver or Triton cannot."""
    import torch

    if torch.cuda.get_device_capability(device)[0] < 9:
        return False, "programmatic dependent launch needs sm_90+"
    try:
        g = torch.Generator(device=device)
        g.manual_seed(0)
        x = torch.randn(1, 512, device=device, generator=g)
        w1 = torch.randn(512, 512, device=device, generator=g).to(torch.bfloat16)
        w2 = torch.randn(256, 512, device=device, generator=g).to(torch.bfloat16)
        gain = torch.rand(512, device=device, generator=g) + 0.5
        mid, out = torch.empty(1, 512, device=device), torch.empty(1, 256, device=device)
        cfg = GemvConfig(block_n=8, block_k=256)

        def chain(pdl: bool) -> None:
            gemv(x, w1, mid, None, cfg, norm=(gain, 1e-6), pdl=pdl, prefetch=prefetch)
            gemv(mid, w2, out, None, cfg, pdl=pdl, prefetch=prefetch)

        chain(False)
        want = out.clone()
        chain(True)  # compile outside capture
        out.fill_(float("nan"))
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            chain(True)
        graph.replay()
        torch.cuda.synchronize()
        if not torch.allclose(out, want, rtol=1e-4, atol=1e-3):
            return False, "PDL chain in a CUDA graph gave a different result"
        return True, "ok"
    except Exception as e:  # noqa: BLE001 - any failure means: run without it, and say why
        return False, f"{type(e).__name__}: {str(e)[:200]}"
