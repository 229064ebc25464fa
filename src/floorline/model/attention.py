"""Decode attention with float32 queries, probabilities and output, over floorline's paged bf16 KV
cache (floorline.kernels.kv_cache layout; split combine from floorline.kernels.attention_combine).

Why a second kernel beside floorline.kernels.decode_attention: that one takes bf16 queries and
rounds the softmax weights and the output to bf16, about 5e-3 rel-L2 per call against float64
(measured, docs/notes/decode.md), which alone breaks the decoder's 1e-3 logits target. Here q and p
enter the tensor cores as hi + lo bf16 pairs (K and V are exact in bf16), so the only rounding left
is the cache's own storage. Same HBM traffic: every K/V byte is read once per (sequence, KV head).
"""

from __future__ import annotations

import os
from typing import Any

import triton
import triton.language as tl

from floorline.kernels.attention_combine import D_CHUNK, _combine_kernel, combine_splits
from floorline.kernels.decode_attention import DecodeConfig, split_plan
from floorline.kernels.gemv import pdl_enter, pdl_kwargs, prefetch_l2
from floorline.kernels.kv_cache import KVCache

LOG2E = 1.4426950408889634
_INTERPRET = os.environ.get("TRITON_INTERPRET") == "1"


@triton.jit
def _hi_lo(x, UPCAST: tl.constexpr):
    if UPCAST:
        return x, tl.zeros_like(x)
    hi = x.to(tl.bfloat16)
    return hi, (x - hi.to(tl.float32)).to(tl.bfloat16)


@triton.jit
def _attn_kernel(q_ptr, k_ptr, v_ptr, pt_ptr, len_ptr, o_ptr, lse_ptr,
                 sq_b, sq_h, sk_page, sk_head, sk_slot, pt_stride, so_b, so_h, so_s, sl_b, sl_h,
                 PAGE_SIZE, split_len, qk_scale,
                 G: tl.constexpr, D: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
                 UPCAST: tl.constexpr, PDL: tl.constexpr = False, PREFETCH: tl.constexpr = False):
    b = tl.program_id(0)
    hk = tl.program_id(1)
    split = tl.program_id(2)
    if PREFETCH:
        # Under PDL, before waiting: pull this split's cached K/V lines into L2 while the previous
        # kernel (QK-norm + RoPE, which writes only this step's slot) finishes. Lengths and page
        # table are not written inside a step; a prefetch of the slot being written is harmless.
        tl.extra.cuda.gdc_launch_dependents()
        n_len = tl.load(len_ptr + b)
        n_end = tl.minimum(split * split_len + split_len, n_len)
        lines = tl.arange(0, D // 64) * 64  # 128 B per line of bf16
        for n0 in range(split * split_len, n_end, BLOCK_N):
            o_n = n0 + tl.arange(0, BLOCK_N)
            pg = tl.load(pt_ptr + b * pt_stride + o_n // PAGE_SIZE, mask=o_n < n_end, other=0).to(tl.int64)
            t_off = pg * sk_page + hk.to(tl.int64) * sk_head + (o_n % PAGE_SIZE) * sk_slot
            prefetch_l2(k_ptr + t_off[:, None] + lines[None, :])
            prefetch_l2(v_ptr + t_off[:, None] + lines[None, :])
        tl.extra.cuda.gdc_wait()
    else:
        pdl_enter(PDL)
    seq_len = tl.load(len_ptr + b)
    rows = tl.arange(0, BLOCK_M)
    row_ok = rows < G
    h_row = hk * G + rows
    d = tl.arange(0, D)
    q = tl.load(q_ptr + b * sq_b + h_row[:, None] * sq_h + d[None, :], mask=row_ok[:, None], other=0.0)
    q_hi, q_lo = _hi_lo(q.to(tl.float32), UPCAST)
    start = split * split_len
    end = tl.minimum(start + split_len, seq_len)
    acc = tl.zeros([BLOCK_M, D], dtype=tl.float32)
    m_i = tl.full([BLOCK_M], float("-inf"), dtype=tl.float32)
    l_i = tl.zeros([BLOCK_M], dtype=tl.float32)
    pt_row = pt_ptr + b * pt_stride
    head_off = hk.to(tl.int64) * sk_head
    for n0 in range(start, end, BLOCK_N):
        offs_n = n0 + tl.arange(0, BLOCK_N)
        n_ok = offs_n < end
        page = tl.load(pt_row + offs_n // PAGE_SIZE, mask=n_ok, other=0).to(tl.int64)
        tok = page * sk_page + head_off + (offs_n % PAGE_SIZE) * sk_slot
        k = tl.load(k_ptr + tok[:, None] + d[None, :], mask=n_ok[:, None], other=0.0).to(q_hi.dtype)
        v = tl.load(v_ptr + tok[:, None] + d[None, :], mask=n_ok[:, None], other=0.0).to(q_hi.dtype)
        kt = tl.trans(k)
        s = (tl.dot(q_hi, kt) + tl.dot(q_lo, kt)) * qk_scale
        s = tl.where(n_ok[None, :], s, float("-inf"))
        m_new = tl.maximum(m_i, tl.max(s, axis=1))
        m_safe = tl.where(m_new == float("-inf"), 0.0, m_new)
        alpha = tl.exp2(m_i - m_safe)
        p = tl.exp2(s - m_safe[:, None])
        l_i = l_i * alpha + tl.sum(p, axis=1)
        m_i = m_new
        p_hi, p_lo = _hi_lo(p, UPCAST)
        acc = acc * alpha[:, None] + tl.dot(p_hi, v) + tl.dot(p_lo, v)
    l_safe = tl.where(l_i > 0, l_i, 1.0)
    lse = tl.where(l_i > 0, m_i + tl.log2(l_safe), float("-inf"))
    tl.store(o_ptr + b * so_b + h_row[:, None] * so_h + split * so_s + d[None, :], acc / l_safe[:, None],
             mask=row_ok[:, None])
    tl.store(lse_ptr + b * sl_b + h_row * sl_h + split, lse, mask=row_ok)


@triton.jit
def _combine_pdl_kernel(o_ptr, lse_ptr, out_ptr, n_splits, HQ, T,
                        so_b, so_t, so_h, so_s, sl_b, sl_t, sl_h, sout_b, sout_t, sout_h,
                        DC: tl.constexpr, BLOCK_S: tl.constexpr, PDL: tl.constexpr):
    # floorline.kernels.attention_combine's kernel body, entered through the PDL handshake
    pdl_enter(PDL)
    _combine_kernel(o_ptr, lse_ptr, out_ptr, n_splits, HQ, T, so_b, so_t, so_h, so_s, sl_b, sl_t, sl_h,
                    sout_b, sout_t, sout_h, DC, BLOCK_S)


def _combine(o_part: Any, lse: Any, n_splits: int, out: Any, pdl: bool) -> None:
    if not pdl:
        combine_splits(o_part, lse, n_splits, out)
        return
    b, t, hq, _, d = o_part.shape
    block_s = max(2, triton.next_power_of_2(n_splits))
    dc = min(D_CHUNK, d, max(8, 4096 // block_s))  # as combine_splits
    _combine_pdl_kernel[(b * t * hq, d // dc)](
        o_part, lse, out, n_splits, hq, t,
        o_part.stride(0), o_part.stride(1), o_part.stride(2), o_part.stride(3),
        lse.stride(0), lse.stride(1), lse.stride(2), out.stride(0), out.stride(1), out.stride(2),
        DC=dc, BLOCK_S=block_s, PDL=True, num_warps=4, launch_pdl=True)


def _prefetch_ok(d: int) -> bool:  # one 128-byte line per 64 bf16 of a row
    return d >= 64 and d % 64 == 0


def decode_attention_f32(q: Any, cache: KVCache, page_table: Any, seq_lens: Any, *, max_len: int, out: Any,
                         workspace: tuple[Any, Any], sm_count: int, cfg: DecodeConfig = DecodeConfig(),
                         pdl: bool = False) -> Any:
    """q: float32 [B, Hq, D]; cache: bf16 KVCache; seq_lens int32 [B] (incl. this token); out: float32
    [B, 1, Hq, D]; workspace from decode_workspace(B, 1, Hq, D, splits). max_len fixes the launch.
    pdl: programmatic dependent launch for both kernels (see floorline.kernels.gemv)."""
    assert cache.kv_dtype == "bf16", "decode_attention_f32 reads bf16 caches"
    B, hq, d = q.shape
    hk = cache.kv_heads
    g = hq // hk
    splits, split_len = split_plan(B, hk, max_len, cfg, sm_count)
    o_part, lse = workspace
    assert o_part.shape[3] >= splits and q.stride(2) == 1 and cache.k.stride(3) == 1
    _attn_kernel[(B, hk, splits)](
        q, cache.k, cache.v, page_table, seq_lens, o_part, lse,
        q.stride(0), q.stride(1), cache.k.stride(0), cache.k.stride(1), cache.k.stride(2),
        page_table.stride(0), o_part.stride(0), o_part.stride(2), o_part.stride(3), lse.stride(0), lse.stride(2),
        cache.page_size, split_len, d**-0.5 * LOG2E,
        G=g, D=d, BLOCK_M=max(16, triton.next_power_of_2(g)), BLOCK_N=cfg.block_n, UPCAST=_INTERPRET,
        PREFETCH=pdl and _prefetch_ok(d), num_warps=cfg.num_warps, num_stages=cfg.num_stages, **pdl_kwargs(pdl),
    )
    _combine(o_part, lse, splits, out, pdl)
    return out
