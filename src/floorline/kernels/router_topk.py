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
from floorline.kernels.gemv import _gemv_kernel, pdl_enter, pdl_kwargs, prefetch_l2, preload_tile


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
def _packed_topk(acc, e, emask, ids_row, wts_row, K: tl.constexpr, KP: tl.constexpr, RENORM: tl.constexpr,
                 BLOCK_E: tl.constexpr):
    """Softmax, top-k, renormalise as _softmax_topk does (k rounds of argmax, ties to the lower
    index), with one reduction a round instead of two: each expert is one int64 key, the logit's
    bits made integer-ordered above the inverted index, so the max key is the top logit and, among
    equal logits, the lowest index. router_b1's tail is one program's serial path: on an H200 (E 128,
    k 8; a session 5 microbenchmark, docs/notes/decode.md) it took ~3 us ranking by an [E, E]
    comparison matrix, ~1.1 us this way at 1 warp, ~2 at 4."""
    logits = tl.where(emask, acc, float("-inf")) + 0.0  # -0.0 -> +0.0: the two tie, as floats do
    bits = logits.to(tl.int32, bitcast=True)
    key = ((bits ^ ((bits >> 31) & 0x7FFFFFFF)).to(tl.int64) << 32) | (BLOCK_E - 1 - e).to(tl.int64)
    kk = tl.arange(0, KP)
    top = tl.zeros([KP], dtype=tl.int64)
    for j in tl.static_range(K):
        best = tl.max(key, axis=0)
        top = tl.where(kk == j, best, top)
        key = tl.where(key == best, -9223372036854775807 - 1, key)
    hi = (top >> 32).to(tl.int32)
    val = (hi ^ ((hi >> 31) & 0x7FFFFFFF)).to(tl.float32, bitcast=True)  # the same map undoes itself
    m = tl.max(tl.where(kk == 0, val, float("-inf")), axis=0)  # round 0's winner: the max logit
    p = tl.exp(val - m)
    if RENORM:  # the softmax denominator cancels
        w = p / tl.sum(tl.where(kk < K, p, 0.0), axis=0)
    else:
        w = p / tl.sum(tl.exp(logits - m), axis=0)
    tl.store(ids_row + kk, BLOCK_E - 1 - (top & 0xFFFFFFFF).to(tl.int32), mask=kk < K)
    tl.store(wts_row + kk, w, mask=kk < K)


@triton.jit
def _router_split_part(x_ptr, w_ptr, gain_ptr, logits_ptr, E, H, K_SPLIT, s_w, s_l, BLOCK_N: tl.constexpr,
                       BLOCK_K: tl.constexpr, NORM: tl.constexpr, PDL: tl.constexpr, PREFETCH: tl.constexpr,
                       ONE_SHOT: tl.constexpr, PRELOAD: tl.constexpr = False):
    """Split s = program_id(1): the partial logits of its BLOCK_N experts over its K slice, stored in
    row s of the scratch, and (NORM) the slice's sum of squares in column E. kernels.gemv's batch-1
    body, except that the norm scale is left to the combine: it needs the whole row's sum of squares."""
    n = tl.program_id(0) * BLOCK_N + tl.arange(0, BLOCK_N)
    nmask = n < E
    k_lo = tl.program_id(1) * K_SPLIT
    k_hi = tl.minimum(k_lo + K_SPLIT, H)
    w_rows = w_ptr + n.to(tl.int64)[:, None] * s_w
    if PRELOAD:  # ONE_SHOT: the weight tile in registers before the wait (kernels.gemv's GemvConfig.preload)
        w_pre = preload_tile(w_rows, k_lo, k_hi, nmask, BLOCK_K, PDL)
    elif PREFETCH:  # the router weight is no kernel's output: start its stream before waiting (PDL)
        tl.extra.cuda.gdc_launch_dependents()
        for k0 in range(k_lo, k_hi, BLOCK_K):
            prefetch_l2(w_rows + (k0 + tl.arange(0, BLOCK_K // 64) * 64)[None, :])
        tl.extra.cuda.gdc_wait()
    else:
        pdl_enter(PDL)
    if ONE_SHOT:
        k = k_lo + tl.arange(0, BLOCK_K)
        kmask = k < k_hi
        if PRELOAD:
            w = w_pre
        else:
            w = tl.load(w_rows + k[None, :], mask=nmask[:, None] & kmask[None, :], other=0.0)
        x = tl.load(x_ptr + k, mask=kmask, other=0.0)
        ss = x * x
        if NORM:
            x = x * tl.load(gain_ptr + k, mask=kmask, other=0.0).to(tl.float32)
        acc = tl.sum(w.to(tl.float32) * x[None, :], axis=1)
    else:
        acc2 = tl.zeros([BLOCK_N, BLOCK_K], dtype=tl.float32)
        ss = tl.zeros([BLOCK_K], dtype=tl.float32)
        for k0 in range(k_lo, k_hi, BLOCK_K):
            k = k0 + tl.arange(0, BLOCK_K)
            kmask = k < k_hi
            w = tl.load(w_rows + k[None, :], mask=nmask[:, None] & kmask[None, :], other=0.0)
            x = tl.load(x_ptr + k, mask=kmask, other=0.0)
            if NORM:
                ss += x * x
                x = x * tl.load(gain_ptr + k, mask=kmask, other=0.0).to(tl.float32)
            acc2 += w.to(tl.float32) * x[None, :]
        acc = tl.sum(acc2, axis=1)
    row = logits_ptr + tl.program_id(1) * s_l
    tl.store(row + n, acc, mask=nmask)
    if NORM:  # every program of split s has the same slice sum; one stores it
        tl.store(row + E, tl.sum(ss, axis=0), mask=tl.program_id(0) == 0)


@triton.jit
def _router_b1_kernel(x_ptr, w_ptr, gain_ptr, logits_ptr, ids_ptr, wts_ptr, cnt_ptr, E, H, K_SPLIT, s_w, s_l, eps,
                      K: tl.constexpr, KP: tl.constexpr, RENORM: tl.constexpr, BLOCK_E: tl.constexpr,
                      BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, NORM: tl.constexpr, PDL: tl.constexpr,
                      PREFETCH: tl.constexpr, ONE_SHOT: tl.constexpr = False, SPLIT_K: tl.constexpr = 1,
                      PRELOAD: tl.constexpr = False):
    if SPLIT_K == 1:
        _gemv_kernel(x_ptr, w_ptr, x_ptr, logits_ptr, gain_ptr, 1, E, H, H, 0, s_w, 0, 0, eps,
                     False, 1, BLOCK_N, BLOCK_K, False, NORM, False, PDL, PREFETCH, ONE_SHOT, PRELOAD)
    else:
        _router_split_part(x_ptr, w_ptr, gain_ptr, logits_ptr, E, H, K_SPLIT, s_w, s_l, BLOCK_N, BLOCK_K, NORM, PDL,
                           PREFETCH, ONE_SHOT, PRELOAD)
    # The last program to finish computes the top-k (ticket pattern of decode_attention_v2's fused
    # combine): barrier so every thread's logits are stored, a gpu-scope acq_rel ticket, .cg loads.
    tl.debug_barrier()
    ticket = tl.atomic_add(cnt_ptr, 1, sem="acq_rel", scope="gpu")
    if ticket == tl.num_programs(0) * tl.num_programs(1) - 1:
        e = tl.arange(0, BLOCK_E)
        emask = e < E
        acc = tl.load(logits_ptr + e, mask=emask, other=0.0, cache_modifier=".cg")
        if SPLIT_K > 1:
            # All rows load at once; the adds run in split order, so every run sums identically
            # (float atomics would add in arrival order).
            for s in tl.static_range(1, SPLIT_K):
                acc += tl.load(logits_ptr + s * s_l + e, mask=emask, other=0.0, cache_modifier=".cg")
            if NORM:
                ss = tl.load(logits_ptr + E, cache_modifier=".cg")
                for s in tl.static_range(1, SPLIT_K):
                    ss += tl.load(logits_ptr + s * s_l + E, cache_modifier=".cg")
                acc = acc * tl.rsqrt(ss / H + eps)
        _packed_topk(acc, e, emask, ids_ptr, wts_ptr, K, KP, RENORM, BLOCK_E)
        tl.atomic_xchg(cnt_ptr, 0, sem="relaxed", scope="gpu")


def router_b1(x: Any, weight: Any, k: int, renormalize: bool, ids_out: Any, weights_out: Any, logits: Any,
              counter: Any, *, norm: tuple[Any, float] | None = None, pdl: bool = False, prefetch: bool = True,
              gemv_cfg: Any = None) -> None:
    """The decoder's fused batch-1 router in one launch: logits = (rmsnorm(x) * gain if norm) @ W^T
    over many programs (kernels.gemv's batch-1 body), then the last program to finish does softmax,
    top-k and renormalise. x: float32 [1, H]; counter: int32 [1], zero, left at zero.
    logits: float32 scratch, [1, E] at split_k 1, else [split_k, E + 1]: row s holds split s's partial
    logits and, in column E, its partial sum of squares. Split-K stores partials, never float atomics,
    and the last program adds them in split order, so the result is the same on every run.
    pdl: see kernels.gemv (the GEMV prefetches the router weight before waiting)."""
    from floorline.kernels.gemv import GemvConfig

    B, H = x.shape
    E = weight.shape[0]
    cfg = gemv_cfg or GemvConfig(block_n=2, block_k=1024)
    S = cfg.split_k
    if B != 1 or weight.shape[1] != H or weight.stride(1) != 1 or x.stride(1) != 1:
        raise InputError(f"router_b1: x [1, {H}] and weight [E, {H}] with contiguous rows, got {tuple(x.shape)}, {tuple(weight.shape)}")
    if not 1 <= k <= E or ids_out.shape != (1, k) or weights_out.shape != (1, k):
        raise InputError(f"router_b1: top-k must be in 1..{E} with outputs [1, k], got k={k}")
    want = (1, E) if S == 1 else (S, E + 1)
    if S < 1 or tuple(logits.shape) != want or logits.stride(1) != 1 or logits.dtype.itemsize != 4 or counter.numel() != 1:
        raise InputError(f"router_b1: logits float32 {list(want)} at split_k {S} and a 1-element counter, got {tuple(logits.shape)}")
    if norm is not None and norm[0].shape != (H,):
        raise InputError(f"router_b1: gain must be [{H}], got {tuple(norm[0].shape)}")
    # Split-K RMSNorm: each slice's sum of squares rides its K loop and the last program adds them, one
    # scalar load more in the load round it has anyway. Reading the whole x row in every program
    # instead would put 8 KB (H 2048) of loads on each 1-4 KB weight slice of the wide phase.
    k_split = triton.cdiv(triton.cdiv(H, S), cfg.block_k) * cfg.block_k
    _router_b1_kernel[(triton.cdiv(E, cfg.block_n), S)](
        x, weight, norm[0] if norm is not None else x, logits, ids_out, weights_out, counter, E, H, k_split,
        weight.stride(0), logits.stride(0), norm[1] if norm is not None else 0.0, K=k, KP=triton.next_power_of_2(k),
        RENORM=renormalize, BLOCK_E=triton.next_power_of_2(E), BLOCK_N=cfg.block_n, BLOCK_K=cfg.block_k,
        NORM=norm is not None, PDL=pdl, PREFETCH=pdl and prefetch and cfg.block_k >= 64, ONE_SHOT=k_split == cfg.block_k, SPLIT_K=S,
        PRELOAD=cfg.preload and k_split == cfg.block_k,
        num_warps=cfg.num_warps, num_stages=cfg.num_stages, **({"launch_pdl": True} if pdl else {}),
    )
