"""Where the batch-1 attention launch spends its ~8 us at 1K (notes/decode.md, session 8): the fused
QK-norm + RoPE + append + attention kernel of the decoder's step, timed alone in a CUDA graph of
back-to-back launches (each waits for the one before: us per launch = duration + launch gap), next to
variants that each take one piece away. Qwen3-30B-A3B attention shape: 32 q / 4 kv heads, d 128.

    python3 scripts/bench_attn_b1.py [--json] [--once VARIANT]   (--once: eager launches, for ncu)
"""

from __future__ import annotations

import argparse
import json
import math
from dataclasses import replace

import torch

from floorline.kernels.decode_attention import DecodeConfig, decode_workspace, split_plan
from floorline.kernels.kv_cache import allocate_kv_cache
from floorline.model.attention import _combine, decode_attention_f32, decode_attention_rope_f32

HQ, HK, D, PAGE = 32, 4, 128, 16


def setup(context: int, max_len: int, cfg: DecodeConfig, sms: int, dev: str = "cuda") -> dict:
    dev = torch.device(dev)
    g = torch.Generator(device=dev).manual_seed(0)
    pages = -(-max_len // PAGE)
    cache = allocate_kv_cache(pages, HK, PAGE, D, "bf16", dev)
    cache.k.copy_(torch.randn(cache.k.shape, generator=g, device=dev).to(cache.k.dtype))
    cache.v.copy_(torch.randn(cache.v.shape, generator=g, device=dev).to(cache.v.dtype))
    splits, _ = split_plan(1, HK, max_len, cfg, sms)
    ws = decode_workspace(1, 1, HQ, D, splits, dev)
    for t in ws:  # combine-only reads them without an attention launch before it
        t.copy_(torch.randn(t.shape, generator=g, device=dev))
    return {
        "cache": cache, "pt": torch.arange(pages, dtype=torch.int32, device=dev).view(1, pages),
        "lens": torch.full((1,), context, dtype=torch.int32, device=dev),
        "pos": torch.full((1,), context - 1, dtype=torch.int32, device=dev),
        "qkv": torch.randn(1, (HQ + 2 * HK) * D, generator=g, device=dev),
        "q32": torch.randn(1, HQ, D, generator=g, device=dev),
        "inv": (1.0 / 1e6 ** (torch.arange(0, D, 2, dtype=torch.float64) / D)).to(dev),
        "gain": torch.rand(D, generator=g, device=dev) + 0.5,
        "out": torch.empty(1, 1, HQ, D, device=dev),
        "ws": ws, "splits": splits,
    }


def launcher(name: str, s: dict, cfg: DecodeConfig, max_len: int, sms: int, pdl: bool):
    c = s["cache"]
    if name == "tiny":  # one small torch kernel: the graph's launch gap plus the least a kernel costs
        return lambda: s["lens"].add_(0)
    if name == "combine-only":
        return lambda: _combine(s["ws"][0], s["ws"][1], s["splits"], s["out"], pdl)
    if name == "no-rope":  # q already normed and rotated (qk_norm_rope's output): no QK-norm/RoPE/append
        return lambda: decode_attention_f32(s["q32"], c, s["pt"], s["lens"], max_len=max_len, out=s["out"],
                                            workspace=s["ws"], sm_count=sms, cfg=cfg, pdl=pdl)
    gain = None if name == "rope-no-norm" else s["gain"]
    return lambda: decode_attention_rope_f32(s["qkv"], s["pos"], s["inv"], 1.0, gain, gain, 1e-6, c, s["pt"],
                                             s["lens"], q_heads=HQ, max_len=max_len, out=s["out"],
                                             workspace=s["ws"], sm_count=sms, cfg=cfg, pdl=pdl)


def time_graph(fn, n: int = 100, reps: int = 20) -> float:
    """Median us per launch, n launches back to back in one CUDA graph (the project's timing harness)."""
    from floorline.gpu.timing import TimingConfig, time_cuda

    return time_cuda(lambda i: fn(), TimingConfig(warmup=3, iters=reps, graph=True, ops_per_graph=n)).median


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--once", default=None)
    ap.add_argument("--context", type=int, default=1024)
    ap.add_argument("--dry-run-cpu", action="store_true", help="one launch of each variant (TRITON_INTERPRET=1)")
    a = ap.parse_args()
    sms = 132 if a.dry_run_cpu else torch.cuda.get_device_properties(0).multi_processor_count
    base = DecodeConfig()
    max_len = a.context + 64
    cases = [("rope (the step's launch)", "rope", base), ("rope-no-norm", "rope-no-norm", base),
             ("no-rope", "no-rope", base), ("rope, 4 splits", "rope", replace(base, num_splits=4)),
             ("rope, 8 splits", "rope", replace(base, num_splits=8)),
             ("rope, block 32", "rope", replace(base, block_n=32)),
             ("rope, one tile", "rope", replace(base, one_tile=True)),
             ("rope, one tile, block 32", "rope", replace(base, one_tile=True, block_n=32)),
             ("no-rope, one tile", "no-rope", replace(base, one_tile=True)),
             ("rope, 2 warps", "rope", replace(base, num_warps=2)),
             ("rope, 8 warps", "rope", replace(base, num_warps=8)),
             ("rope, 1 split", "rope", replace(base, num_splits=1)),
             ("combine-only", "combine-only", base), ("tiny torch kernel", "tiny", base)]
    if a.once:
        cfg = dict((n, c) for n, _, c in cases).get(a.once, base)
        kind = dict((n, k) for n, k, _ in cases).get(a.once, a.once)
        s = setup(a.context, max_len, cfg, sms)
        fn = launcher(kind, s, cfg, max_len, sms, False)
        for _ in range(8):
            fn()
        torch.cuda.synchronize()
        return
    if a.dry_run_cpu:
        for name, kind, cfg in cases:
            s = setup(a.context, max_len, cfg, sms, "cpu")
            launcher(kind, s, cfg, max_len, sms, False)()
            print(name, "ok", float(s["out"].abs().sum()))
        return
    rows = []
    for name, kind, cfg in cases:
        s = setup(a.context, max_len, cfg, sms)
        row = {"variant": name, "splits": s["splits"], "device": torch.cuda.get_device_name(0)}
        for pdl in (False, True):
            try:
                row["pdl_us" if pdl else "us"] = time_graph(launcher(kind, s, cfg, max_len, sms, pdl))
            except Exception as e:  # noqa: BLE001 - one variant's failure must not hide the others
                row["error"] = f"{type(e).__name__}: {str(e)[:160]}"
        rows.append(row)
        if not a.json:
            print(f"{name:28s} splits {s['splits']:3d}  {row.get('us', math.nan):7.2f} us  "
                  f"PDL {row.get('pdl_us', math.nan):7.2f} us  {row.get('error', '')}", flush=True)
    if a.json:
        print(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
