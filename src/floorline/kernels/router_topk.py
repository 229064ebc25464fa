"""The MoE router in one kernel: logits = x @ W^T over all experts, softmax, top-k, renormalise.

One program per token: the router weight ([E, H], 1 MiB at E=128, H=4096) stays in L2 across the
batch, and logits never leave registers. Top-k is k rounds of argmax (k = 8 of 128), which matches
torch.topk's choice for distinct values; ties pick the lower expert index.
With a logits buffer the product runs as a GEMV over many SMs first and one program per token
does the softmax and top-k: at batch 1 a single program streaming the whole router weight is
latency-bound (one SM's worth of bandwidth), so this two-kernel form is the faster one there.
"""

from __future__ import annotations

from typing import Any

import triton
import triton.language as tl

from floorline.errors import InputError
from floorline.kernels.gemv import _gemv_kernel, pdl_enter, pdl_kwargs


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
    _softmax_topk(acc, e, emask, ids_ptr + row * s_ids, wts_ptr + row * s_wts, K, KP, RENORM, BLOCK_E)


@triton.jit
def _softmax_topk(acc, e, emask, ids_row, wts_row, K: tl.constexpr, KP: tl.constexpr, RENORM: tl.constexpr,
                  BLOCK_E: tl.constexpr):
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
    tl.store(ids_row + kk, top_i, mask=kk < K)
    tl.store(wts_row + kk, top_w, mask=kk < K)


@triton.jit
def _topk_kernel(logits_ptr, ids_ptr, wts_ptr, E, s_l, s_ids, s_wts,
                 K: tl.constexpr, KP: tl.constexpr, RENORM: tl.constexpr, BLOCK_E: tl.constexpr,
                 PDL: tl.constexpr = False):
    pdl_enter(PDL)
    row = tl.program_id(0)
    e = tl.arange(0, BLOCK_E)
    emask = e < E
    acc = tl.load(logits_ptr + row * s_l + e, mask=emask, other=0.0)
    _softmax_topk(acc, e, emask, ids_ptr + row * s_ids, wts_ptr + row * s_wts, K, KP, RENORM, BLOCK_E)


def router_topk(x: Any, weight: Any, k: int, renormalize: bool, ids_out: Any, weights_out: Any,
                logits: Any = None, gemv_cfg: Any = None) -> None:
    """x: [B, H] (fp32/bf16); weight: [E, H]; ids_out: int32 [B, k]; weights_out: float32 [B, k].
    logits: optional float32 [B, E] buffer: compute the product with the GEMV kernel first."""
    B, H = x.shape
    E = weight.shape[0]
    if weight.shape[1] != H or weight.stride(1) != 1 or x.stride(1) != 1:
        raise InputError(f"router: x [B, {H}] and weight [E, {H}] with contiguous rows, got {tuple(weight.shape)}")
    if not 1 <= k <= E:
        raise InputError(f"router: top-k must be in 1..{E}, got {k}")
    if ids_out.shape != (B, k) or weights_out.shape != (B, k):
        raise InputError(f"router: outputs must be [{B}, {k}]")
    block_e = triton.next_power_of_2(E)
    kp = triton.next_power_of_2(k)
    if logits is not None:
        from floorline.kernels.gemv import GemvConfig, gemv

        if logits.shape != (B, E) or logits.stride(1) != 1:
            raise InputError(f"router: logits buffer must be float32 [{B}, {E}], got {tuple(logits.shape)}")
        gemv(x, weight, logits, None, gemv_cfg or GemvConfig(block_n=4, block_k=1024))
        topk(logits, k, renormalize, ids_out, weights_out)
        return
    block_h = max(16, min(triton.next_power_of_2(H), 8192 // block_e))
    _router_kernel[(B,)](
        x, weight, ids_out, weights_out, E, H, x.stride(0), weight.stride(0), ids_out.stride(0),
        weights_out.stride(0), K=k, KP=kp, RENORM=renormalize, BLOCK_E=block_e, BLOCK_H=block_h, num_warps=4,
    )


def topk(logits: Any, k: int, renormalize: bool, ids_out: Any, weights_out: Any, pdl: bool = False) -> None:
    """Softmax, top-k and (optionally) renormalise over router logits float32 [B, E] computed
    elsewhere (the decoder's fused step computes them with the normed GEMV); pdl: see kernels.gemv."""
    B, E = logits.shape
    if logits.stride(1) != 1 or logits.dtype.itemsize != 4:
        raise InputError(f"router: logits must be row-contiguous float32 [B, E], got {tuple(logits.shape)}")
    if not 1 <= k <= E or ids_out.shape != (B, k) or weights_out.shape != (B, k):
        raise InputError(f"router: top-k must be in 1..{E} with outputs [{B}, k], got k={k}")
    block_e = triton.next_power_of_2(E)
    _topk_kernel[(B,)](logits, ids_out, weights_out, E, logits.stride(0), ids_out.stride(0), weights_out.stride(0),
                       K=k, KP=triton.next_power_of_2(k), RENORM=renormalize, BLOCK_E=block_e,
                       num_warps=1 if block_e <= 256 else 4,  # k rounds of argmax: one warp, no barriers
                       **pdl_kwargs(pdl))


@triton.jit
def _rank_topk(acc, e, emask, ids_row, wts_row, K: tl.constexpr, RENORM: tl.constexpr):
    """Softmax, top-k, renormalise in one pass with no k-round loop: each expert's rank is the number
    of experts ahead of it (larger probability, or equal with a lower index - the tie rule of
    _softmax_topk), and the k experts of rank < k store themselves at their rank."""
    logits = tl.where(emask, acc, float("-inf"))
    p = tl.exp(logits - tl.max(logits, axis=0))
    p = p / tl.sum(p, axis=0)
    p = tl.where(emask, p, -1.0)
    ahead = (p[None, :] > p[:, None]) | ((p[None, :] == p[:, None]) & (e[None, :] < e[:, None]))
    rank = tl.sum(ahead.to(tl.int32), axis=1)
    sel = (rank < K) & emask
    w = p
    if RENORM:
        w = p / tl.sum(tl.where(sel, p, 0.0), axis=0)
    tl.store(ids_row + rank, e, mask=sel)
    tl.store(wts_row + rank, w, mask=sel)


@triton.jit
def _router_b1_kernel(x_ptr, w_ptr, gain_ptr, logits_ptr, ids_ptr, wts_ptr, cnt_ptr, E, H, s_w, eps,
                      K: tl.constexpr, RENORM: tl.constexpr, BLOCK_E: tl.constexpr, BLOCK_N: tl.constexpr,
                      BLOCK_K: tl.constexpr, NORM: tl.constexpr, PDL: tl.constexpr, PREFETCH: tl.constexpr,
                      ONE_SHOT: tl.constexpr = False):
    _gemv_kernel(x_ptr, w_ptr, x_ptr, logits_ptr, gain_ptr, 1, E, H, H, 0, s_w, 0, 0, eps,
                 False, 1, BLOCK_N, BLOCK_K, False, NORM, False, PDL, PREFETCH, ONE_SHOT)
    # The last program to finish computes the top-k (ticket pattern of decode_attention_v2's fused
    # combine): barrier so every thread's logits are stored, a gpu-scope acq_rel ticket, .cg loads.
    tl.debug_barrier()
    ticket = tl.atomic_add(cnt_ptr, 1, sem="acq_rel", scope="gpu")
    if ticket == tl.num_programs(0) - 1:
        e = tl.arange(0, BLOCK_E)
        emask = e < E
        acc = tl.load(logits_ptr + e, mask=emask, other=0.0, cache_modifier=".cg")
        _rank_topk(acc, e, emask, ids_ptr, wts_ptr, K, RENORM)
        tl.atomic_xchg(cnt_ptr, 0, sem="relaxed", scope="gpu")


def router_b1(x: Any, weight: Any, k: int, renormalize: bool, ids_out: Any, weights_out: Any, logits: Any,
              counter: Any, *, norm: tuple[Any, float] | None = None, pdl: bool = False, prefetch: bool = True,
              gemv_cfg: Any = None) -> None:
    """The decoder's fused batch-1 router in one launch: logits = (rmsnorm(x) * gain if norm) @ W^T
    over many programs (kernels.gemv's batch-1 body), then the last program to finish does softmax,
    top-k and renormalise. x: float32 [1, H]; logits: float32 [1, E] scratch; counter: int32 [1],
    zero, left at zero. pdl: see kernels.gemv (the GEMV prefetches the router weight before waiting)."""
    from floorline.kernels.gemv import GemvConfig

    B, H = x.shape
    E = weight.shape[0]
    cfg = gemv_cfg or GemvConfig(block_n=2, block_k=1024)
    if B != 1 or weight.shape[1] != H or weight.stride(1) != 1 or x.stride(1) != 1:
        raise InputError(f"router_b1: x [1, {H}] and weight [E, {H}] with contiguous rows, got {tuple(x.shape)}, {tuple(weight.shape)}")
    if not 1 <= k <= E or ids_out.shape != (1, k) or weights_out.shape != (1, k):
        raise InputError(f"router_b1: top-k must be in 1..{E} with outputs [1, k], got k={k}")
    if logits.shape != (1, E) or logits.dtype.itemsize != 4 or counter.numel() != 1 or cfg.split_k != 1:
        raise InputError(f"router_b1: logits float32 [1, {E}], a 1-element counter and split_k 1")
    if norm is not None and norm[0].shape != (H,):
        raise InputError(f"router_b1: gain must be [{H}], got {tuple(norm[0].shape)}")
    _router_b1_kernel[(triton.cdiv(E, cfg.block_n),)](
        x, weight, norm[0] if norm is not None else x, logits, ids_out, weights_out, counter, E, H, weight.stride(0),
        norm[1] if norm is not None else 0.0, K=k, RENORM=renormalize, BLOCK_E=triton.next_power_of_2(E),
        BLOCK_N=cfg.block_n, BLOCK_K=cfg.block_k, NORM=norm is not None, PDL=pdl,
        PREFETCH=pdl and prefetch and cfg.block_k >= 64, ONE_SHOT=cfg.block_k >= H, num_warps=cfg.num_warps, num_stages=cfg.num_stages,
        **({"launch_pdl": True} if pdl else {}),
    )
