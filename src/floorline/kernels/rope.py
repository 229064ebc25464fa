"""Rotary embedding for decode, with the QK-norm in front: per head x <- rmsnorm(x) * gain, then
rotate pairs (i, i + d/2) by angle position * inv_freq[i].

One program per (token, head) over the qkv GEMV output, writing q and k (normed, rotated) and v
(copied) into their own buffers, or, given a bf16 paged cache, k and v straight into their cache
slots (the KV append fused in: one kernel launch per layer fewer, and k/v never round-trip).
The angle is formed in float64 and reduced mod 2*pi before cos/sin: in float32, position x inv_freq
at position 131072 carries an absolute error near 0.01 rad, which the float64 reference would see.
"""

from __future__ import annotations

from typing import Any

import triton
import triton.language as tl

from floorline.errors import InputError
from floorline.kernels.gemv import pdl_enter, pdl_kwargs

TWO_PI = 6.283185307179586


@triton.jit
def _qk_norm_rope_kernel(qkv_ptr, pos_ptr, inv_freq_ptr, qg_ptr, kg_ptr, q_ptr, k_ptr, v_ptr,
                         seq_ptr, pt_ptr, kc_ptr, vc_ptr,
                         s_qkv, s_q, s_k, s_v, HQ, HK, eps, cos_scale, pt_stride, c_page, c_head, c_slot, PAGE_SIZE,
                         D: tl.constexpr, HALF: tl.constexpr, NORM: tl.constexpr, TO_CACHE: tl.constexpr,
                         PDL: tl.constexpr = False):
    pdl_enter(PDL)
    tok = tl.program_id(0)
    h = tl.program_id(1)  # 0..HQ-1: q heads, HQ..HQ+HK-1: k heads, then v heads
    i = tl.arange(0, HALF)
    src = qkv_ptr + tok * s_qkv + h * D
    x1 = tl.load(src + i).to(tl.float32)
    x2 = tl.load(src + HALF + i).to(tl.float32)
    if TO_CACHE:  # this token's slot in its sequence's pages
        p = tl.load(pos_ptr + tok)
        page = tl.load(pt_ptr + tl.load(seq_ptr + tok) * pt_stride + p // PAGE_SIZE).to(tl.int64)
        slot_off = page * c_page + (p % PAGE_SIZE) * c_slot
    if h >= HQ + HK:  # v: no norm, no rotation
        if TO_CACHE:
            dvc = vc_ptr + slot_off + (h - HQ - HK) * c_head
            tl.store(dvc + i, x1.to(vc_ptr.dtype.element_ty))
            tl.store(dvc + HALF + i, x2.to(vc_ptr.dtype.element_ty))
        else:
            dv = v_ptr + tok * s_v + (h - HQ - HK) * D
            tl.store(dv + i, x1.to(v_ptr.dtype.element_ty))
            tl.store(dv + HALF + i, x2.to(v_ptr.dtype.element_ty))
    else:
        is_q = h < HQ
        if NORM:
            r = tl.rsqrt((tl.sum(x1 * x1, axis=0) + tl.sum(x2 * x2, axis=0)) / D + eps)
            gp = tl.where(is_q, qg_ptr, kg_ptr)
            x1 = x1 * r * tl.load(gp + i).to(tl.float32)
            x2 = x2 * r * tl.load(gp + HALF + i).to(tl.float32)
        pos = tl.load(pos_ptr + tok).to(tl.float64)
        ang = pos * tl.load(inv_freq_ptr + i)  # float64
        ang = (ang - tl.floor(ang / 6.283185307179586) * 6.283185307179586).to(tl.float32)
        c = tl.cos(ang) * cos_scale
        s = tl.sin(ang) * cos_scale
        y1 = x1 * c - x2 * s
        y2 = x2 * c + x1 * s
        if is_q:
            dq = q_ptr + tok * s_q + h * D
            tl.store(dq + i, y1.to(q_ptr.dtype.element_ty))
            tl.store(dq + HALF + i, y2.to(q_ptr.dtype.element_ty))
        elif TO_CACHE:
            dkc = kc_ptr + slot_off + (h - HQ) * c_head
            tl.store(dkc + i, y1.to(kc_ptr.dtype.element_ty))
            tl.store(dkc + HALF + i, y2.to(kc_ptr.dtype.element_ty))
        else:
            dk = k_ptr + tok * s_k + (h - HQ) * D
            tl.store(dk + i, y1.to(k_ptr.dtype.element_ty))
            tl.store(dk + HALF + i, y2.to(k_ptr.dtype.element_ty))


def qk_norm_rope(qkv: Any, positions: Any, inv_freq: Any, cos_scale: float, q_gain: Any, k_gain: Any,
                 eps: float, q_out: Any, k_out: Any, v_out: Any, q_heads: int, kv_heads: int,
                 cache: Any = None, page_table: Any = None, seq_ids: Any = None, pdl: bool = False) -> None:
    """qkv: [T, (q_heads + 2 kv_heads) * d]; positions: int [T]; inv_freq: float64 [d/2];
    q_out: [T, q_heads, d]; k_out, v_out: [T, kv_heads, d], or None with a bf16 `cache` (a
    floorline.kernels.kv_cache.KVCache) plus page_table int32 [B, pages] and seq_ids int32 [T]:
    then token t's k and v go to sequence seq_ids[t]'s slot positions[t]. q_gain/k_gain None skips
    the norm. pdl: programmatic dependent launch (see kernels.gemv)."""
    T = qkv.shape[0]
    d = q_out.shape[-1]
    if qkv.shape[1] != (q_heads + 2 * kv_heads) * d or qkv.stride(1) != 1:
        raise InputError(f"qkv: must be [T, {(q_heads + 2 * kv_heads) * d}] row-contiguous, got {tuple(qkv.shape)}")
    if d & (d - 1) or inv_freq.shape != (d // 2,) or inv_freq.dtype.itemsize != 8:
        raise InputError(f"head_dim {d}: must be a power of two with float64 inv_freq [{d // 2}]")
    outs = [("q_out", q_out, q_heads)]
    to_cache = cache is not None
    if to_cache:
        if cache.kv_dtype not in ("bf16", "fp16") or cache.head_dim != d or cache.kv_heads != kv_heads or cache.k.stride(3) != 1:
            raise InputError(f"cache: must be a bf16/fp16 cache of {kv_heads} heads x {d}, got {cache.kv_dtype} {tuple(cache.k.shape)}")
        if page_table is None or seq_ids is None or seq_ids.shape != (T,):
            raise InputError(f"cache: needs page_table and seq_ids [{T}]")
    else:
        outs += [("k_out", k_out, kv_heads), ("v_out", v_out, kv_heads)]
    for name, t, h in outs:
        if t.shape != (T, h, d) or not t.is_contiguous():
            raise InputError(f"{name}: must be contiguous [{T}, {h}, {d}], got {tuple(t.shape)}")
    norm = q_gain is not None
    k_out = k_out if k_out is not None else q_out
    v_out = v_out if v_out is not None else q_out
    kc = cache.k if to_cache else q_out
    vc = cache.v if to_cache else q_out
    _qk_norm_rope_kernel[(T, q_heads + 2 * kv_heads)](
        qkv, positions, inv_freq, q_gain if norm else qkv, k_gain if norm else qkv, q_out, k_out, v_out,
        seq_ids if to_cache else positions, page_table if to_cache else positions, kc, vc,
        qkv.stride(0), q_out.stride(0), k_out.stride(0), v_out.stride(0), q_heads, kv_heads, eps, cos_scale,
        page_table.stride(0) if to_cache else 0, kc.stride(0) if to_cache else 0, kc.stride(1) if to_cache else 0,
        kc.stride(2) if to_cache else 0, cache.page_size if to_cache else 1,
        D=d, HALF=d // 2, NORM=norm, TO_CACHE=to_cache, num_warps=1, **pdl_kwargs(pdl),
    )
