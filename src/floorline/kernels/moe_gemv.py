"""MoE expert GEMV: each (token, expert) slot multiplies its row by that expert's weight, reading
only the selected experts' weights, each selected expert once per call however many tokens chose it.

Slots are s = token * k + j (j-th choice of token). Two launch modes, one kernel:
- per-slot (batch 1: k distinct experts): program (s, n-block) streams its expert's rows, fp32 math;
- grouped (batch > 1): slots sorted by expert; the program at the first sorted position of each
  expert's run streams that expert's [BLOCK_N, K] tile once and multiplies every token in the run on
  bf16 tensor cores (x split hi + lo, see gemv.py); the other positions exit at once.
SWIGLU=True fuses silu(gate) * up over the [E, 2I, H] gate-up weights (gate rows n, up rows I + n),
so the intermediate never round-trips through HBM. With routing weights the output rows come out
weighted; the next add_rmsnorm sums a token's k rows into the residual (the MoE combine).
A dense MLP layer runs through the same kernel as a single expert (E = 1, k = 1).
"""

from __future__ import annotations

from typing import Any

import triton
import triton.language as tl

from floorline.errors import InputError
from floorline.kernels.gemv import _INTERPRET, GemvConfig, block_b, pdl_enter, prefetch_l2, split_hi_lo
from floorline.kernels.moe_grouped import DOWN, GATE_UP, moe_grouped
from floorline.kernels.swiglu import silu_mul


@triton.jit
def _moe_gemv_kernel(x_ptr, w_ptr, scale_ptr, slot_e_ptr, order_ptr, slot_w_ptr, out_ptr,
                     S, N, K, K_SPLIT, INTER, ROW_DIV, s_x, s_we, s_wn, s_se, s_out,
                     SPLIT: tl.constexpr,
                     SWIGLU: tl.constexpr, HAS_SCALE: tl.constexpr, HAS_WEIGHT: tl.constexpr,
                     BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
                     S_P2: tl.constexpr, UPCAST: tl.constexpr):
    p = tl.program_id(0)
    n = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)
    nmask = n < N
    sp = tl.program_id(2)  # split-K slice: output row slot * SPLIT + sp holds its partial sum
    k_lo = sp * K_SPLIT
    k_hi = tl.minimum(k_lo + K_SPLIT, K)
    if BLOCK_M == 1:
        e = tl.load(slot_e_ptr + p).to(tl.int64)
        xrow = x_ptr + (p // ROW_DIV) * s_x
        wg = w_ptr + e * s_we + n.to(tl.int64)[:, None] * s_wn
        wu = wg + INTER * s_wn
        acc_g = tl.zeros([BLOCK_N, BLOCK_K], dtype=tl.float32)
        acc_u = tl.zeros([BLOCK_N, BLOCK_K], dtype=tl.float32)
        for k0 in range(k_lo, k_hi, BLOCK_K):
            k = k0 + tl.arange(0, BLOCK_K)
            kmask = k < k_hi
            m2 = nmask[:, None] & kmask[None, :]
            x = tl.load(xrow + k, mask=kmask, other=0.0).to(tl.float32)[None, :]
            acc_g += tl.load(wg + k[None, :], mask=m2, other=0.0).to(tl.float32) * x
            if SWIGLU:
                acc_u += tl.load(wu + k[None, :], mask=m2, other=0.0).to(tl.float32) * x
        g = tl.sum(acc_g, axis=1)
        if HAS_SCALE:
            g = g * tl.load(scale_ptr + e * s_se + n, mask=nmask, other=0.0)
        if SWIGLU:
            u = tl.sum(acc_u, axis=1)
            if HAS_SCALE:
                u = u * tl.load(scale_ptr + e * s_se + INTER + n, mask=nmask, other=0.0)
            g = silu_mul(g, u)
        if HAS_WEIGHT:
            g = g * tl.load(slot_w_ptr + p)
        tl.store(out_ptr + (p * SPLIT + sp) * s_out + n, g.to(out_ptr.dtype.element_ty), mask=nmask)
    else:
        all_e = tl.load(slot_e_ptr + tl.arange(0, S_P2), mask=tl.arange(0, S_P2) < S, other=-1)
        e = tl.load(slot_e_ptr + tl.load(order_ptr + p))
        prev = tl.load(slot_e_ptr + tl.load(order_ptr + tl.maximum(p - 1, 0)))
        cnt = tl.sum((all_e == e).to(tl.int32), axis=0)  # the run of e in sorted order starts at p
        if (p == 0) | (prev != e):
            e64 = e.to(tl.int64)
            wg = w_ptr + e64 * s_we + n.to(tl.int64)[:, None] * s_wn
            wu = wg + INTER * s_wn
            for c0 in range(0, cnt, BLOCK_M):
                m = c0 + tl.arange(0, BLOCK_M)
                mmask = m < cnt
                slot = tl.load(order_ptr + p + m, mask=mmask, other=0)
                xrows = x_ptr + (slot // ROW_DIV).to(tl.int64)[:, None] * s_x
                acc_g = tl.zeros([BLOCK_M, BLOCK_N], dtype=tl.float32)
                acc_u = tl.zeros([BLOCK_M, BLOCK_N], dtype=tl.float32)
                for k0 in range(k_lo, k_hi, BLOCK_K):
                    k = k0 + tl.arange(0, BLOCK_K)
                    kmask = k < k_hi
                    m2 = nmask[:, None] & kmask[None, :]
                    x = tl.load(xrows + k[None, :], mask=mmask[:, None] & kmask[None, :], other=0.0)
                    hi, lo = split_hi_lo(x.to(tl.float32), UPCAST)
                    wt = tl.trans(tl.load(wg + k[None, :], mask=m2, other=0.0).to(hi.dtype))
                    acc_g += tl.dot(hi, wt) + tl.dot(lo, wt)
                    if SWIGLU:
                        wt = tl.trans(tl.load(wu + k[None, :], mask=m2, other=0.0).to(hi.dtype))
                        acc_u += tl.dot(hi, wt) + tl.dot(lo, wt)
                if HAS_SCALE:
                    acc_g = acc_g * tl.load(scale_ptr + e64 * s_se + n, mask=nmask, other=0.0)[None, :]
                if SWIGLU:
                    if HAS_SCALE:
                        acc_u = acc_u * tl.load(scale_ptr + e64 * s_se + INTER + n, mask=nmask, other=0.0)[None, :]
                    acc_g = silu_mul(acc_g, acc_u)
                if HAS_WEIGHT:
                    acc_g = acc_g * tl.load(slot_w_ptr + slot, mask=mmask, other=0.0)[:, None]
                orow = slot.to(tl.int64) * SPLIT + sp
                tl.store(out_ptr + orow[:, None] * s_out + n[None, :], acc_g.to(out_ptr.dtype.element_ty),
                         mask=mmask[:, None] & nmask[None, :])


def moe_gemv(x: Any, w: Any, slot_experts: Any, out: Any, *, tokens: int, scale: Any = None,
             slot_weights: Any = None, swiglu: bool = False, order: Any = None,
             cfg: GemvConfig = GemvConfig(), grouped: bool = True) -> Any:
    """x: float32 [R, K] (R = tokens when slots share a token's row, R = S for per-slot rows);
    w: [E, N_w, K] bf16/fp8; slot_experts: int32 [S]; out: [S, N] with N = N_w/2 if swiglu else N_w.
    order: int32 [S] argsort of slot_experts (stable), required when tokens > 1.
    slot_weights: float32 [S] multiplies each output row (the routing weights).
    cfg.split_k > 1 (not with swiglu, which is not linear): out is [S * split_k, N], rows
    slot * split_k + j holding partial sums over slices of K that the consumer adds.
    Batch > 1 runs kernels/moe_grouped.py (its own tiles; cfg gives only split_k) unless
    grouped=False, which keeps this file's grouped mode (the old path, for benchmarks)."""
    S = slot_experts.numel()
    R, K = x.shape
    E, n_w, kw = w.shape
    N = n_w // 2 if swiglu else n_w
    if kw != K or w.stride(2) != 1 or x.stride(1) != 1:
        raise InputError(f"moe_gemv: x [R, {K}] and w [E, N, {K}] with contiguous rows, got {tuple(x.shape)}, {tuple(w.shape)}")
    if S % R and R % S:
        raise InputError(f"moe_gemv: slots ({S}) and x rows ({R}) must divide one another")
    split = cfg.split_k
    if split > 1 and swiglu:
        raise InputError("moe_gemv: split_k needs a linear epilogue (not swiglu)")
    if out.shape != (S * split, N) or out.stride(1) != 1:
        raise InputError(f"moe_gemv: out must be [{S * split}, {N}], got {tuple(out.shape)}")
    if scale is not None and scale.shape != (E, n_w):
        raise InputError(f"moe_gemv: scale must be [{E}, {n_w}], got {tuple(scale.shape)}")
    if not 1 <= tokens <= 64:
        raise InputError(f"moe_gemv: tokens must be 1..64, got {tokens}")
    bm = block_b(tokens)
    if bm > 1 and (order is None or order.shape != (S,)):
        raise InputError(f"moe_gemv: order (argsort of slot_experts, int32 [{S}]) is required for batch > 1")
    if bm > 1 and grouped:  # batch > 1: one weight stream per expert tile (kernels/moe_grouped.py)
        return moe_grouped(x, w, slot_experts, order, out, scale=scale, slot_weights=slot_weights, swiglu=swiglu,
                           split_k=split, cfg=GATE_UP if swiglu else DOWN)
    bn = cfg.block_n if bm == 1 else max(16, cfg.block_n)
    bk = cfg.block_k if bm == 1 else min(cfg.block_k, 64)  # 128 spills registers at BLOCK_M 16 (sm_90)
    k_split = triton.cdiv(triton.cdiv(K, split), bk) * bk
    _moe_gemv_kernel[(S, triton.cdiv(N, bn), split)](
        x, w, scale if scale is not None else x, slot_experts, order if order is not None else slot_experts,
        slot_weights if slot_weights is not None else x, out,
        S, N, K, k_split, n_w // 2, max(1, S // R), x.stride(0), w.stride(0), w.stride(1),
        scale.stride(0) if scale is not None else 0, out.stride(0), SPLIT=split,
        SWIGLU=swiglu, HAS_SCALE=scale is not None, HAS_WEIGHT=slot_weights is not None,
        BLOCK_M=bm, BLOCK_N=bn, BLOCK_K=bk, S_P2=triton.next_power_of_2(S), UPCAST=_INTERPRET,
        num_warps=cfg.num_warps, num_stages=cfg.num_stages,
    )
    return out


@triton.jit
def _moe_gemv_b1_kernel(x_ptr, w_ptr, scale_ptr, slot_e_ptr, slot_w_ptr, out_ptr, gain_ptr,
                        N, K, K_SPLIT, INTER, ROW_DIV, OUT_DIV, s_x, s_we, s_wn, s_se, s_out, eps,
                        SPLIT: tl.constexpr, SWIGLU: tl.constexpr, HAS_SCALE: tl.constexpr,
                        HAS_WEIGHT: tl.constexpr, NORM: tl.constexpr, ACCUM: tl.constexpr, PDL: tl.constexpr,
                        BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, ONE_SHOT: tl.constexpr = False,
                        WAIT_FIRST: tl.constexpr = False, PREFETCH: tl.constexpr = False,
                        DBUF: tl.constexpr = False, EVICT: tl.constexpr = "", PRELOAD: tl.constexpr = False):
    p = tl.program_id(0)
    n = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)
    nmask = n < N
    sp = tl.program_id(2)
    k_lo = sp * K_SPLIT
    k_hi = tl.minimum(k_lo + K_SPLIT, K)
    if PRELOAD:
        # ONE_SHOT (GemvConfig.preload): as PREFETCH below, but the weight tile goes into registers,
        # where the previous kernel's stream cannot evict it (session 5: down's L2 prefetch beside
        # gate-up's 50 MB was likely evicted). Under PDL only after a WAIT_FIRST launch (see PREFETCH).
        if PDL:
            tl.extra.cuda.gdc_launch_dependents()
        e = tl.load(slot_e_ptr + p, cache_modifier=".cg").to(tl.int64)
        k_pre = k_lo + tl.arange(0, BLOCK_K)
        m_pre = nmask[:, None] & (k_pre < k_hi)[None, :]
        w_pre = w_ptr + e * s_we + n.to(tl.int64)[:, None] * s_wn + k_pre[None, :]
        g_pre = tl.load(w_pre, mask=m_pre, other=0.0)
        u_pre = g_pre
        if SWIGLU:
            u_pre = tl.load(w_pre + INTER * s_wn, mask=m_pre, other=0.0)
        if PDL:
            tl.extra.cuda.gdc_wait()
    elif PREFETCH:
        # The expert ids come from the router, two launches back; the launch in between (gate-up)
        # ran with WAIT_FIRST, so this kernel cannot have launched before the router finished: the
        # ids may be read before waiting (.cg: from L2, never a stale L1 line), and this program's
        # weight rows pulled into L2 while gate-up still runs.
        tl.extra.cuda.gdc_launch_dependents()
        e = tl.load(slot_e_ptr + p, cache_modifier=".cg").to(tl.int64)
        wrows = w_ptr + e * s_we + n.to(tl.int64)[:, None] * s_wn
        for k0 in range(k_lo, k_hi, BLOCK_K):
            prefetch_l2(wrows + (k0 + tl.arange(0, BLOCK_K // 64) * 64)[None, :])
        tl.extra.cuda.gdc_wait()
    elif WAIT_FIRST:
        # let the next kernel launch only once the previous one has finished (see PREFETCH)
        tl.extra.cuda.gdc_wait()
        tl.extra.cuda.gdc_launch_dependents()
        e = tl.load(slot_e_ptr + p).to(tl.int64)
    else:
        pdl_enter(PDL)
        e = tl.load(slot_e_ptr + p).to(tl.int64)
    xrow = x_ptr + (p // ROW_DIV) * s_x
    wg = w_ptr + e * s_we + n.to(tl.int64)[:, None] * s_wn
    wu = wg + INTER * s_wn
    if ONE_SHOT:  # the K slice is one tile: every load issued at once, no [N, K] accumulators
        k = k_lo + tl.arange(0, BLOCK_K)
        kmask = k < k_hi
        m2 = nmask[:, None] & kmask[None, :]
        x = tl.load(xrow + k, mask=kmask, other=0.0).to(tl.float32)
        ss = x * x
        if NORM:
            x = x * tl.load(gain_ptr + k, mask=kmask, other=0.0).to(tl.float32)
        if PRELOAD:
            tg, tu = g_pre, u_pre
        else:
            tg = tl.load(wg + k[None, :], mask=m2, other=0.0, eviction_policy=EVICT)
            tu = tg
            if SWIGLU:
                tu = tl.load(wu + k[None, :], mask=m2, other=0.0, eviction_policy=EVICT)
        gs = tl.sum(tg.to(tl.float32) * x[None, :], axis=1)
        us = gs
        if SWIGLU:
            us = tl.sum(tu.to(tl.float32) * x[None, :], axis=1)
    else:
        acc_g = tl.zeros([BLOCK_N, BLOCK_K], dtype=tl.float32)
        acc_u = tl.zeros([BLOCK_N, BLOCK_K], dtype=tl.float32)
        ss = tl.zeros([BLOCK_K], dtype=tl.float32)
        if DBUF:  # tile i+1's weights are issued before tile i's multiply-adds (GemvConfig.double_buffer)
            k = k_lo + tl.arange(0, BLOCK_K)
            m2 = nmask[:, None] & (k < k_hi)[None, :]
            tg = tl.load(wg + k[None, :], mask=m2, other=0.0, eviction_policy=EVICT)
            tu = tg
            if SWIGLU:
                tu = tl.load(wu + k[None, :], mask=m2, other=0.0, eviction_policy=EVICT)
            for k0 in range(k_lo, k_hi, BLOCK_K):
                k = k0 + tl.arange(0, BLOCK_K)
                kmask = k < k_hi
                kn = k + BLOCK_K
                mn = nmask[:, None] & (kn < k_hi)[None, :]
                ng = tl.load(wg + kn[None, :], mask=mn, other=0.0, eviction_policy=EVICT)
                nu = ng
                if SWIGLU:
                    nu = tl.load(wu + kn[None, :], mask=mn, other=0.0, eviction_policy=EVICT)
                x = tl.load(xrow + k, mask=kmask, other=0.0).to(tl.float32)
                if NORM:
                    ss += x * x
                    x = x * tl.load(gain_ptr + k, mask=kmask, other=0.0).to(tl.float32)
                acc_g += tg.to(tl.float32) * x[None, :]
                if SWIGLU:
                    acc_u += tu.to(tl.float32) * x[None, :]
                tg = ng
                tu = nu
        else:
            for k0 in range(k_lo, k_hi, BLOCK_K):
                k = k0 + tl.arange(0, BLOCK_K)
                kmask = k < k_hi
                m2 = nmask[:, None] & kmask[None, :]
                x = tl.load(xrow + k, mask=kmask, other=0.0).to(tl.float32)
                if NORM:  # x is the raw residual row; rsqrt(mean square) scales the dot products at the end
                    ss += x * x
                    x = x * tl.load(gain_ptr + k, mask=kmask, other=0.0).to(tl.float32)
                acc_g += tl.load(wg + k[None, :], mask=m2, other=0.0, eviction_policy=EVICT).to(tl.float32) * x[None, :]
                if SWIGLU:
                    acc_u += tl.load(wu + k[None, :], mask=m2, other=0.0, eviction_policy=EVICT).to(tl.float32) * x[None, :]
        gs = tl.sum(acc_g, axis=1)
        us = tl.sum(acc_u, axis=1)
    r = 1.0
    if NORM:
        r = tl.rsqrt(tl.sum(ss, axis=0) / K + eps)
    g = gs * r
    if HAS_SCALE:
        g = g * tl.load(scale_ptr + e * s_se + n, mask=nmask, other=0.0)
    if SWIGLU:
        u = us * r
        if HAS_SCALE:
            u = u * tl.load(scale_ptr + e * s_se + INTER + n, mask=nmask, other=0.0)
        g = silu_mul(g, u)
    if HAS_WEIGHT:
        g = g * tl.load(slot_w_ptr + p)
    if ACCUM:  # the MoE combine: every slot of a token adds into that token's residual row
        tl.atomic_add(out_ptr + (p // OUT_DIV) * s_out + n, g, mask=nmask, sem="relaxed")
    else:
        tl.store(out_ptr + (p * SPLIT + sp) * s_out + n, g.to(out_ptr.dtype.element_ty), mask=nmask)


def moe_gemv_b1(x: Any, w: Any, slot_experts: Any, out: Any, *, scale: Any = None, slot_weights: Any = None,
                swiglu: bool = False, norm: tuple[Any, float] | None = None, accumulate: bool = False,
                pdl: bool = False, wait_first: bool = False, prefetch_after_wait_first: bool = False,
                cfg: GemvConfig = GemvConfig()) -> Any:
    """The batch-1 expert GEMV of the decoder's fused step (one token, k slots = its k experts).
    x: float32 [1, K] (norm given: the raw residual, normed by (gain [K], eps) on the fly) or [S, K]
    (one row per slot); out: [S, N], or with accumulate=True the float32 residual [1, N] that every
    slot's (weighted) row is added into with atomics (the MoE combine; any split_k). pdl: see gemv.
    Under pdl, wait_first=True lets the next kernel launch only after this one's wait (gate-up does
    it), which is what makes prefetch_after_wait_first=True safe for that next kernel (down): it reads
    the expert ids before its own wait and prefetches its weight rows into L2 while gate-up runs. Only
    pass prefetch_after_wait_first when the previous launch ran with wait_first and the ids were
    written before that launch."""
    S = slot_experts.numel()
    R, K = x.shape
    E, n_w, kw = w.shape
    N = n_w // 2 if swiglu else n_w
    if kw != K or w.stride(2) != 1 or x.stride(1) != 1 or R not in (1, S):
        raise InputError(f"moe_gemv_b1: x [1 or {S}, {K}] and w [E, N, {K}] with contiguous rows, got {tuple(x.shape)}, {tuple(w.shape)}")
    split = cfg.split_k
    if split > 1 and (swiglu or not accumulate):
        raise InputError("moe_gemv_b1: split_k needs a linear epilogue that accumulates (not swiglu)")
    if norm is not None and (split != 1 or R != 1 or norm[0].shape != (K,)):
        raise InputError(f"moe_gemv_b1: norm needs split_k 1, one x row and a gain of [{K}]")
    want = (1, N) if accumulate else (S, N)
    if out.shape != want or out.stride(1) != 1 or (accumulate and out.dtype.itemsize != 4):
        raise InputError(f"moe_gemv_b1: out must be {list(want)}{' float32' if accumulate else ''}, got {tuple(out.shape)}")
    if scale is not None and scale.shape != (E, n_w):
        raise InputError(f"moe_gemv_b1: scale must be [{E}, {n_w}], got {tuple(scale.shape)}")
    bn, bk = cfg.block_n, cfg.block_k
    k_split = triton.cdiv(triton.cdiv(K, split), bk) * bk
    # preload reads the expert ids before the PDL wait: safe without PDL, or after a WAIT_FIRST launch
    preload = cfg.preload and k_split == bk and (not pdl or prefetch_after_wait_first)
    _moe_gemv_b1_kernel[(S, triton.cdiv(N, bn), split)](
        x, w, scale if scale is not None else x, slot_experts, slot_weights if slot_weights is not None else x, out,
        norm[0] if norm is not None else x, N, K, k_split, n_w // 2, S // R, S, x.stride(0), w.stride(0),
        w.stride(1), scale.stride(0) if scale is not None else 0, out.stride(0), norm[1] if norm is not None else 0.0,
        SPLIT=split, SWIGLU=swiglu, HAS_SCALE=scale is not None, HAS_WEIGHT=slot_weights is not None,
        NORM=norm is not None, ACCUM=accumulate, PDL=pdl, BLOCK_N=bn, BLOCK_K=bk, ONE_SHOT=k_split == bk,
        WAIT_FIRST=pdl and wait_first, PREFETCH=pdl and prefetch_after_wait_first and bk >= 64 and not cfg.preload,
        PRELOAD=preload,
        DBUF=cfg.double_buffer and k_split > bk, EVICT="evict_first" if cfg.evict_first else "",
        num_warps=cfg.num_warps, num_stages=cfg.num_stages, **({"launch_pdl": True} if pdl else {}),
    )
    return out
