"""Pick GEMV launch shapes on the device, on the model's own weights, by timing a few candidates.

A small fixed candidate list per weight class (not a search): each candidate compiles once, so the
list is what keeps the tuning inside a few tens of seconds. Batch 1 runs the CUDA-core path whose
best tile depends on N x K; batch > 1 runs the tensor-core path with the heuristic shapes.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from floorline.kernels.gemv import GemvConfig, gemv
from floorline.kernels.moe_gemv import moe_gemv
from floorline.model.fast import LaunchConfigs

B1_CANDIDATES = (
    GemvConfig(block_n=8, block_k=512, num_warps=4, num_stages=3),
    GemvConfig(block_n=16, block_k=256, num_warps=4, num_stages=3),
    GemvConfig(block_n=16, block_k=512, num_warps=8, num_stages=3),
    GemvConfig(block_n=4, block_k=1024, num_warps=4, num_stages=4),
    GemvConfig(block_n=32, block_k=256, num_warps=8, num_stages=3),
)


def tune_batch1(w: Any, progress: Any = lambda m: None) -> tuple[LaunchConfigs, dict[str, Any]]:
    """Best candidate per weight class at batch 1, and the timings (us) behind each choice."""
    import torch

    from floorline.gpu.timing import TimingConfig, time_cuda

    cfg, L = w.cfg, w.layers[0]
    dev = w.device
    g = torch.Generator(device=dev)
    g.manual_seed(0)
    H = cfg.hidden_size
    x = torch.randn(1, H, device=dev, generator=g)
    xo = torch.randn(1, cfg.q_size, device=dev, generator=g)
    out_qkv = torch.empty(1, L.qkv.w.shape[0], device=dev)
    out_o = torch.empty(1, H, device=dev)
    out_lm = torch.empty(1, cfg.vocab_size, device=dev)
    E, k = L.gate_up.w.shape[0], (cfg.num_experts_per_tok if L.is_moe else 1)
    inter = L.gate_up.w.shape[1] // 2
    slot_e = torch.randperm(E, device=dev, generator=g)[:k].to(torch.int32)
    act = torch.randn(k, inter, device=dev, generator=g)
    out_act = torch.empty(k, inter, device=dev)
    out_dn = torch.empty(k, H, device=dev)
    wts = torch.rand(k, device=dev, generator=g)
    cases = {
        "qkv": lambda c: gemv(x, L.qkv.w, out_qkv, L.qkv.scale, c),
        "o": lambda c: gemv(xo, L.o.w, out_o, L.o.scale, c),
        "lm_head": lambda c: gemv(x, w.lm_head, out_lm, None, c),
        "gate_up": lambda c: moe_gemv(x, L.gate_up.w, slot_e, out_act, tokens=1, scale=L.gate_up.scale, swiglu=True, cfg=c),
        "down": lambda c: moe_gemv(act, L.down.w, slot_e, out_dn, tokens=1, scale=L.down.scale, slot_weights=wts, cfg=c),
    }
    chosen, table = {}, {}
    for name, run in cases.items():
        best, best_us, rows = None, float("inf"), []
        for c in B1_CANDIDATES:
            try:
                us = time_cuda(lambda i, c=c, run=run: run(c), TimingConfig(warmup=3, iters=20, timeout_s=30)).median
            except Exception as e:  # noqa: BLE001 - a candidate that fails to compile is skipped, and said so
                rows.append({"config": c.__dict__, "error": f"{type(e).__name__}: {str(e)[:120]}"})
                continue
            rows.append({"config": c.__dict__, "us": us})
            if us < best_us:
                best, best_us = c, us
        chosen[name] = best or getattr(LaunchConfigs(), name)
        table[name] = {"chosen": chosen[name].__dict__, "us": best_us, "candidates": rows}
        progress(f"tune {name}: {best_us:.1f} us with {chosen[name]}")
    return replace(LaunchConfigs(), **chosen), table
