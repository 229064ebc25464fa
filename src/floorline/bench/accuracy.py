"""Accuracy of the quantized KV formats on realistic data: rel-L2 of the decode-attention output vs a
float64 attention over the unquantized K/V.

The data imitates what LLM caches look like: Gaussian values; 2% of channels are outliers (x4 in K
and V); and key channel scales spread log-normally (sigma 0.5: a ~7x spread across the middle 95% of
channels), which is what makes per-token scales lose the small channels.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

OUTLIER_SHARE = 0.02
K_OUTLIER, V_OUTLIER = 4.0, 4.0
K_SCALE_SIGMA = 0.5


@dataclass(frozen=True)
class AccuracyResult:
    tokens: int
    q_heads: int
    kv_heads: int
    head_dim: int
    rel_l2: dict[str, float]  # format -> rel-L2 vs float64
    seed: int


def realistic_kv(tokens: int, kv_heads: int, head_dim: int, gen: Any) -> tuple[Any, Any]:
    import torch

    n_out = max(1, round(OUTLIER_SHARE * head_dim))
    k_ch = torch.exp(torch.randn(kv_heads, 1, head_dim, generator=gen) * K_SCALE_SIGMA)
    v_ch = torch.ones(kv_heads, 1, head_dim)
    for ch, mult in ((k_ch, K_OUTLIER), (v_ch, V_OUTLIER)):
        for h in range(kv_heads):
            ch[h, 0, torch.randperm(head_dim, generator=gen)[:n_out]] *= mult
    k = torch.randn(kv_heads, tokens, head_dim, generator=gen) * k_ch
    v = torch.randn(kv_heads, tokens, head_dim, generator=gen) * v_ch
    return k.to(torch.bfloat16), v.to(torch.bfloat16)


def accuracy_report(device: str, *, quick: bool = False, seed: int = 11, tokens: int = 0) -> AccuracyResult:
    """bf16, fp8, fp4 and fp4 with the Hadamard rotation, on the same realistic data."""
    import torch

    from floorline.kernels.decode_attention import DecodeConfig, decode_attention
    from floorline.kernels.kv_cache import allocate_kv_cache, kv_append
    from floorline.kernels.reference.attention import attention_f64

    on_cpu = device == "cpu"
    tokens = tokens or (300 if on_cpu else (4096 if quick else 32768))
    hq, hk, d, ps = (8, 1, 128, 16) if on_cpu else (64, 4, 128, 64)
    gen = torch.Generator().manual_seed(seed)
    k, v = realistic_kv(tokens, hk, d, gen)
    q = torch.randn(1, 1, hq, d, generator=gen).to(torch.bfloat16)
    ref = attention_f64(q[0], k, v, tokens, d**-0.5)  # [1, Hq, D]
    n_pages = -(-tokens // ps)
    pt = torch.randperm(n_pages, generator=gen).to(torch.int32)[None].to(device)
    lens = torch.tensor([tokens], dtype=torch.int32, device=device)
    seq = torch.zeros(tokens, dtype=torch.int32, device=device)
    pos = torch.arange(tokens, dtype=torch.int32, device=device)
    cfg = DecodeConfig(block_n=16, num_warps=4, num_stages=1) if on_cpu else DecodeConfig()
    out: dict[str, float] = {}
    for name, dtype, rotate in (("bf16", "bf16", False), ("fp8", "fp8", False), ("fp4", "fp4", False),
                                ("fp4+hadamard", "fp4", True)):
        cache = allocate_kv_cache(n_pages, hk, ps, d, dtype, device, rotate=rotate)
        kv_append(cache, k.transpose(0, 1).to(device), v.transpose(0, 1).to(device), pt, seq, pos)
        o = decode_attention(q.to(device), cache, pt, lens, max_len=tokens, cfg=cfg)
        diff = o[0].double().cpu() - ref
        out[name] = float(diff.norm() / ref.norm())
    return AccuracyResult(tokens, hq, hk, d, out, seed)


def write_accuracy_packet(acc: AccuracyResult, out_dir: Path, command: list[str] | None = None) -> Path:
    from floorline.evidence.schema import Correctness
    from floorline.evidence.store import new_packet, write_packet
    from floorline.kernels.kv_cache import QUANT_REL_L2

    ok = all(acc.rel_l2[k] < QUANT_REL_L2[k] for k in acc.rel_l2)
    worst = max(acc.rel_l2, key=lambda k: acc.rel_l2[k] / QUANT_REL_L2[k])
    packet = new_packet(
        "bench.attention_accuracy", status="passed" if ok else "failed",
        failure_class=None if ok else "accuracy", command=command,
        params={"tokens": acc.tokens, "q_heads": acc.q_heads, "kv_heads": acc.kv_heads, "head_dim": acc.head_dim,
                "rel_l2": acc.rel_l2, "budget": {k: QUANT_REL_L2[k] for k in acc.rel_l2},
                "data": {"outlier_share": OUTLIER_SHARE, "k_outlier": K_OUTLIER, "v_outlier": V_OUTLIER,
                         "k_channel_scale_sigma": K_SCALE_SIGMA}},
        correctness=Correctness(reference="float64 attention over the unquantized K/V", metric=f"rel_l2 ({worst})",
                                value=acc.rel_l2[worst], tolerance=QUANT_REL_L2[worst], passed=ok,
                                seeds=[acc.seed]),
    )
    return write_packet(packet, out_dir, "bench-attention-accuracy")
