"""The MoE router in one kernel: logits = x @ W^T over all experts, softmax, top-k, renormalise.

One program per token: the router weight ([E, H], 1 MiB at E=128, H=4096) stays in L2 across the
batch, and logits never leave registers. Top-k is k rounds of argmax (k = 8 of 128), which matches
torch.topk's choice for distinct values; ties pick the lower expert index.
"""

from __future__ import annotations

from typing import Any

import triton
import triton.language as tl

from floorline.errors import InputError


@triton.jit
def _router_kernel(x_ptr, w_ptr, ids_ptr, wts_ptr, E, H, s_x, s_w, s_ids, s_wts,
                   K: tl.constexpr, KP: tl.constexpr, RENORM: tl.constexpr, BLOCK_E: tl.constexpr, BLOCK_H: tl.constexpr):
    row = tl.program_id(0)
    e = tl.arange(0, BLOCK_E)
    emask = e < E
    acc = tl.zeros([BLOCK_E], dtype=tl.float32)
    for h0 in range(0, H, BLOCK_H):
        h = h0 + tl.arange(0, BLOCK_H)
        hmask = h < H
        x = tl.load(x_ptr + row * s_x + h, mask=hmask, other=0.0).to(tl.float32)
        w = tl.load(w_ptr + e[:, None] * s_w + h[None, :], mask=emask[:, None] & hmask[None, :], other=0.0)
        acc += tl.sum(w.to(tl.float32) * x[None, :], axis=1)
    logits = tl.where(emask, acc, float("-inf"))
    p = tl.exp(logits - tl.max(logits, axis=0))
    p = p / tl.sum(p, axis=0)
    p = tl.where(emask, p, -1.0)
    kk = tl.arange(0, KP)
    top_w = tl.zeros([KP], dtype=tl.float32)
    top_i = tl.zeros([KP], dtype=tl.int32)
    for j in tl.static_range(K):
        best = tl.max(p, axis=0)
        idx = tl.min(tl.where(p == best, e, BLOCK_E), axis=0)
        top_w = tl.where(kk == j, best, top_w)
        top_i = tl.where(kk == j, idx, top_i)
        p = tl.where(e == idx, -1.0, p)
    if RENORM:
        top_w = top_w / tl.sum(top_w, axis=0)
    tl.store(ids_ptr + row * s_ids + kk, top_i, mask=kk < K)
    tl.store(wts_ptr + row * s_wts + kk, top_w, mask=kk < K)


def router_topk(x: Any, weight: Any, k: int, renormalize: bool, ids_out: Any, weights_out: Any) -> None:
    """x: [B, H] (fp32/bf16); weight: [E, H]; ids_out: int32 [B, k]; weights_out: float32 [B, k]."""
    B, H = x.shape
    E = weight.shape[0]
    if weight.shape[1] != H or weight.stride(1) != 1 or x.stride(1) != 1:
        raise InputError(f"router: x [B, {H}] and weight [E, {H}] with contiguous rows, got {tuple(weight.shape)}")
    if not 1 <= k <= E:
        raise InputError(f"router: top-k must be in 1..{E}, got {k}")
    if ids_out.shape != (B, k) or weights_out.shape != (B, k):
        raise InputError(f"router: outputs must be [{B}, {k}]")
    block_e = triton.next_power_of_2(E)
    block_h = max(16, min(triton.next_power_of_2(H), 8192 // block_e))
    _router_kernel[(B,)](
        x, weight, ids_out, weights_out, E, H, x.stride(0), weight.stride(0), ids_out.stride(0),
        weights_out.stride(0), K=k, KP=triton.next_power_of_2(k), RENORM=renormalize, BLOCK_E=block_e, BLOCK_H=block_h, num_warps=4,
    )
