"""Decode attention with float32 queries, probabilities and output, over floorline's paged bf16 KV
cache (floorline.kernels.kv_cache layout; split combine from floorline.kernels.attention_combine).

Why a second kernel beside floorline.kernels.decode_attention: that one takes bf16 queries and
rounds the softmax weights and the output to bf16, about 5e-3 rel-L2 per call against float64
(measured, docs/notes/decode.md), which alone breaks the decoder's 1e-3 logits target. Here q and p
enter the tensor cores as hi + lo bf16 pairs (K and V are exact in bf16), so the only rounding left
is the cache's own storage. Same HBM traffic: every K/V byte is read once per (sequence, KV head).

cfg.fuse_combine merges the splits in the last program of each (sequence, KV head), as
decode_attention_v2 does, instead of a second launch. Not a clear win, hence off by default: on an
H200 (a session 5 microbenchmark, docs/notes/decode.md) (batch 1, 32 q / 4 KV heads, D 128, PDL, attention + o-proj GEMV in a CUDA graph) it was ~0.7 us
per layer slower at 1K context over 17 splits (the separate combine hides under PDL there), level at
16, 2-3 us faster when most of a max_len-4096 plan's 64 splits lie past the sequence, and far slower
at 32K (128 splits: one program reads 0.5 MB of partials).
"""

from __future__ import annotations

import os
from typing import Any

import triton
import triton.language as tl

from floorline.errors import InputError
from floorline.kernels.attention_combine import D_CHUNK, _combine_kernel, combine_splits
from floorline.kernels.decode_attention import DecodeConfig, split_plan
from floorline.kernels.gemv import pdl_enter, pdl_kwargs, prefetch_l2, prefetch_share
from floorline.kernels.kv_cache import KVCache

LOG2E = 1.4426950408889634
_INTERPRET = os.environ.get("TRITON_INTERPRET") == "1"


@triton.jit
def _hi_lo(x, UPCAST: tl.constexpr, HALF: tl.constexpr):
    # HALF: the cache's 16-bit type (bf16 or fp16); tensor-core operands must share it
    if UPCAST:
        return x, tl.zeros_like(x)
    hi = x.to(HALF)
    return hi, (x - hi.to(tl.float32)).to(HALF)


@triton.jit
def _norm_rope(x, xp, g, gp, sign, c, s, eps, D: tl.constexpr, NORM: tl.constexpr):
    """Rows of x [M, D] (xp: each row's rotate-half partner, x[(d + D/2) % D]): per-row RMSNorm * gain,
    then y = x cos + sign * partner sin (sign -1 in the first half): Qwen3's QK-norm + RoPE."""
    if NORM:
        r = tl.rsqrt(tl.sum(x * x, axis=1) / D + eps)[:, None]
        x = x * r * g[None, :]
        xp = xp * r * gp[None, :]
    return x * c[None, :] + sign[None, :] * xp * s[None, :]


@triton.jit
def _rope_tables(pos, inv_freq_ptr, qg_ptr, kg_ptr, cos_scale, d, D: tl.constexpr, NORM: tl.constexpr):
    """What QK-norm + RoPE need besides the rows: the rotate-half partner index and sign, cos and sin at
    this position (angle in float64, reduced mod 2 pi), and the q/k gains at d and at the partner."""
    dp = (d + D // 2) % D
    sign = tl.where(d < D // 2, -1.0, 1.0)
    ang = pos.to(tl.float64) * tl.load(inv_freq_ptr + d % (D // 2))
    ang = (ang - tl.floor(ang / 6.283185307179586) * 6.283185307179586).to(tl.float32)
    c = tl.cos(ang) * cos_scale
    sn = tl.sin(ang) * cos_scale
    qg, qgp, kg, kgp = c, c, c, c
    if NORM:
        qg = tl.load(qg_ptr + d).to(tl.float32)
        qgp = tl.load(qg_ptr + dp).to(tl.float32)
        kg = tl.load(kg_ptr + d).to(tl.float32)
        kgp = tl.load(kg_ptr + dp).to(tl.float32)
    return dp, sign, c, sn, qg, qgp, kg, kgp


@triton.jit
def _attn_kernel(q_ptr, k_ptr, v_ptr, pt_ptr, len_ptr, o_ptr, lse_ptr, out_ptr, cnt_ptr,
                 sq_b, sq_h, sk_page, sk_head, sk_slot, pt_stride, so_b, so_h, so_s, sl_b, sl_h, sout_b, sout_h,
                 PAGE_SIZE, split_len, qk_scale, pos_ptr, inv_freq_ptr, qg_ptr, kg_ptr, HQ, HK, eps, cos_scale,
                 nx_ptr, nx_lines, G: tl.constexpr, D: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
                 UPCAST: tl.constexpr, PDL: tl.constexpr = False, PREFETCH: tl.constexpr = False,
                 ROPE: tl.constexpr = False, NORM: tl.constexpr = False, FUSE: tl.constexpr = False,
                 BLOCK_G: tl.constexpr = 2, BLOCK_S: tl.constexpr = 2, ONE_TILE: tl.constexpr = False,
                 NEXT: tl.constexpr = 0, NEXT_LINE: tl.constexpr = 64):
    # ROPE: q_ptr is the raw qkv GEMV output [B, (HQ + 2 HK) * D]; this kernel does the QK-norm +
    # RoPE itself (q for its G heads; in the split that holds this step's position, the new k and v,
    # which it also stores into the cache) - one launch per layer fewer than qk_norm_rope + attention.
    b = tl.program_id(0)
    hk = tl.program_id(1)
    split = tl.program_id(2)
    d = tl.arange(0, D)
    if ONE_TILE:
        # The split is one block (split_len == BLOCK_N): its cached K/V (positions < this step's, written
        # by earlier steps, as are the lengths, positions and page table) are loaded before anything
        # this step's previous kernel writes, so under PDL before the wait, and the q prologue below
        # runs while they arrive. The new token's k/v come from the qkv row after the wait.
        if PDL:
            tl.extra.cuda.gdc_launch_dependents()
        seq_len = tl.load(len_ptr + b)
        start = split * split_len
        end = tl.minimum(start + split_len, seq_len)
        if ROPE:
            pos = tl.load(pos_ptr + b)
            end_cache = tl.minimum(end, pos)
            page_pos = tl.load(pt_ptr + b * pt_stride + pos // PAGE_SIZE).to(tl.int64)
        else:
            end_cache = end
        offs_n = start + tl.arange(0, BLOCK_N)
        n_ok = offs_n < end_cache
        page = tl.load(pt_ptr + b * pt_stride + offs_n // PAGE_SIZE, mask=n_ok, other=0).to(tl.int64)
        tok = page * sk_page + hk.to(tl.int64) * sk_head + (offs_n % PAGE_SIZE) * sk_slot
        k_tile = tl.load(k_ptr + tok[:, None] + d[None, :], mask=n_ok[:, None], other=0.0)
        v_tile = tl.load(v_ptr + tok[:, None] + d[None, :], mask=n_ok[:, None], other=0.0)
        if ROPE:  # cos/sin and gains depend on no activation either
            dp, sign, c, sn, qg, qgp, kg, kgp = _rope_tables(pos, inv_freq_ptr, qg_ptr, kg_ptr, cos_scale, d, D, NORM)
        if PDL:
            tl.extra.cuda.gdc_wait()
    elif PREFETCH:
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
    if NEXT > 0:
        # LaunchConfigs.prefetch_next: the previous kernel (the qkv GEMV) has finished and this launch is
        # latency-bound, so HBM would idle until o-proj; stream the next layer's qkv weight into L2
        prefetch_share(nx_ptr, nx_lines, NEXT_LINE, NEXT == 2)
    if not ONE_TILE:
        seq_len = tl.load(len_ptr + b)
        start = split * split_len
        end = tl.minimum(start + split_len, seq_len)
    rows = tl.arange(0, BLOCK_M)
    row_ok = rows < G
    h_row = hk * G + rows
    if ROPE:
        if not ONE_TILE:
            pos = tl.load(pos_ptr + b)
            dp, sign, c, sn, qg, qgp, kg, kgp = _rope_tables(pos, inv_freq_ptr, qg_ptr, kg_ptr, cos_scale, d, D, NORM)
        qrow = q_ptr + b * sq_b + h_row[:, None] * D
        krow = q_ptr + b * sq_b + (HQ + hk) * D
        if ONE_TILE:  # the new token's rows in the same load round as q's
            k_new, k_new_p = tl.load(krow + d), tl.load(krow + dp)
            v_new = tl.load(q_ptr + b * sq_b + (HQ + HK + hk) * D + d)
        q = _norm_rope(tl.load(qrow + d[None, :], mask=row_ok[:, None], other=0.0),
                       tl.load(qrow + dp[None, :], mask=row_ok[:, None], other=0.0), qg, qgp, sign, c, sn, eps, D, NORM)
        if not ONE_TILE:
            end_cache = tl.minimum(end, pos)  # the new token comes from registers below, not from the cache
    else:
        q = tl.load(q_ptr + b * sq_b + h_row[:, None] * sq_h + d[None, :], mask=row_ok[:, None], other=0.0)
        if not ONE_TILE:
            end_cache = end
    q = q.to(tl.float32)
    q_hi, q_lo = _hi_lo(q, UPCAST, k_ptr.dtype.element_ty)
    acc = tl.zeros([BLOCK_M, D], dtype=tl.float32)
    m_i = tl.full([BLOCK_M], float("-inf"), dtype=tl.float32)
    l_i = tl.zeros([BLOCK_M], dtype=tl.float32)
    pt_row = pt_ptr + b * pt_stride
    head_off = hk.to(tl.int64) * sk_head
    if ONE_TILE:  # the loop below at one block, from the tile loaded first (empty: m -inf, l 0, acc 0)
        kt = tl.trans(k_tile.to(q_hi.dtype))
        s = (tl.dot(q_hi, kt) + tl.dot(q_lo, kt)) * qk_scale
        s = tl.where(n_ok[None, :], s, float("-inf"))
        m_i = tl.max(s, axis=1)
        m_safe = tl.where(m_i == float("-inf"), 0.0, m_i)
        p = tl.exp2(s - m_safe[:, None])
        l_i = tl.sum(p, axis=1)
        p_hi, p_lo = _hi_lo(p, UPCAST, k_ptr.dtype.element_ty)
        v = v_tile.to(q_hi.dtype)
        acc = tl.dot(p_hi, v) + tl.dot(p_lo, v)
    else:
        for n0 in range(start, end_cache, BLOCK_N):
            offs_n = n0 + tl.arange(0, BLOCK_N)
            n_ok = offs_n < end_cache
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
            p_hi, p_lo = _hi_lo(p, UPCAST, k_ptr.dtype.element_ty)
            acc = acc * alpha[:, None] + tl.dot(p_hi, v) + tl.dot(p_lo, v)
    if ROPE:
        if (pos >= start) & (pos < end):  # this split holds the new token: k, v from the qkv row
            if ONE_TILE:
                kn = _norm_rope(k_new[None, :], k_new_p[None, :], kg, kgp, sign, c, sn, eps, D, NORM)
                vb = v_new.to(v_ptr.dtype.element_ty)
                new_page = page_pos
            else:
                kn = _norm_rope(tl.load(krow + d)[None, :], tl.load(krow + dp)[None, :], kg, kgp, sign, c, sn, eps, D,
                                NORM)
                vb = tl.load(q_ptr + b * sq_b + (HQ + HK + hk) * D + d).to(v_ptr.dtype.element_ty)
                new_page = tl.load(pt_ptr + b * pt_stride + pos // PAGE_SIZE).to(tl.int64)
            kb = kn.to(k_ptr.dtype.element_ty)  # the value the cache holds, and the one attended to
            slot = new_page * sk_page + hk.to(tl.int64) * sk_head + (pos % PAGE_SIZE) * sk_slot
            tl.store(k_ptr + slot + d[None, :], kb)
            tl.store(v_ptr + slot + d, vb)
            s_new = tl.sum(q * kb.to(tl.float32), axis=1) * qk_scale
            m_new = tl.maximum(m_i, s_new)
            alpha = tl.exp2(m_i - m_new)
            p_new = tl.exp2(s_new - m_new)
            l_i = l_i * alpha + p_new
            m_i = m_new
            acc = acc * alpha[:, None] + p_new[:, None] * vb.to(tl.float32)[None, :]
    l_safe = tl.where(l_i > 0, l_i, 1.0)
    lse = tl.where(l_i > 0, m_i + tl.log2(l_safe), float("-inf"))
    if FUSE:
        # Splits that start at or past seq_len (the plan is fixed by max_len) hold no key: they
        # neither write partials nor take a ticket, and the merge reads only the live ones. Split 0
        # counts as live even at length 0, so some program always writes the (zero) output.
        n_live = tl.maximum(tl.cdiv(seq_len, split_len), 1)
        if n_live == 1:  # nothing to merge, and the counter stays 0
            if split == 0:
                tl.store(out_ptr + b * sout_b + h_row[:, None] * sout_h + d[None, :], acc / l_safe[:, None],
                         mask=row_ok[:, None])
        elif split < n_live:
            tl.store(o_ptr + b * so_b + h_row[:, None] * so_h + split * so_s + d[None, :], acc / l_safe[:, None],
                     mask=row_ok[:, None])
            tl.store(lse_ptr + b * sl_b + h_row * sl_h + split, lse, mask=row_ok)
            # Every thread's partial stores are issued (barrier) before the one gpu-scope release
            # that publishes them with the ticket; the last ticket's acquire pairs with all of them.
            tl.debug_barrier()
            cnt = cnt_ptr + b * HK + hk
            ticket = tl.atomic_add(cnt, 1, sem="acq_rel", scope="gpu")
            if ticket == n_live - 1:
                _merge_splits(o_ptr, lse_ptr, out_ptr, b, hk, n_live, so_b, so_h, so_s, sl_b, sl_h, sout_b, sout_h,
                              G, D, BLOCK_G, BLOCK_S)
                # back to 0 for the next launch (a CUDA graph replays without a memset); every
                # program of this launch has taken its ticket already
                tl.atomic_xchg(cnt, 0, sem="relaxed", scope="gpu")
    else:
        tl.store(o_ptr + b * so_b + h_row[:, None] * so_h + split * so_s + d[None, :], acc / l_safe[:, None],
                 mask=row_ok[:, None])
        tl.store(lse_ptr + b * sl_b + h_row * sl_h + split, lse, mask=row_ok)


@triton.jit
def _merge_splits(o_ptr, lse_ptr, out_ptr, b, hk, n_live, so_b, so_h, so_s, sl_b, sl_h, sout_b, sout_h,
                  G: tl.constexpr, D: tl.constexpr, BLOCK_G: tl.constexpr, BLOCK_S: tl.constexpr):
    """attention_combine's merge for the G query heads of KV head hk, over splits [0, n_live). One
    program reads every partial here, so its cost is L2 round trips: each moves a [G, splits, DC]
    tile of up to 16384 floats (H200, 17 splits: two chunks of 64 channels cost ~0.9 us less per
    layer than four of 32, and still spill nothing), rows are the G heads, not the dot's 16-row
    BLOCK_M, and the first chunk is requested together with the lse, not after it. Loads go through
    L2 (.cg): other programs' partials are not coherent in this SM's L1."""
    DC: tl.constexpr = max(1, min(D, 16384 // (BLOCK_G * BLOCK_S)))
    g = tl.arange(0, BLOCK_G)
    g_ok = g < G
    h = hk * G + g
    s = tl.arange(0, BLOCK_S)
    ok = g_ok[:, None] & (s[None, :] < n_live)
    lse = tl.load(lse_ptr + b * sl_b + h[:, None] * sl_h + s[None, :], mask=ok, other=float("-inf"),
                  cache_modifier=".cg")  # [G, S]
    # Masked by liveness alone, not by weight > 0 as attention_combine does, so that no load waits
    # on the lse: every live split wrote a finite partial this launch (0 where it saw no key).
    part = o_ptr + b * so_b + h[:, None, None] * so_h + s[None, :, None] * so_s  # [G, S, 1]
    x = tl.load(part + tl.arange(0, DC)[None, None, :], mask=ok[:, :, None], other=0.0, cache_modifier=".cg")
    m = tl.max(lse, axis=1)
    m_safe = tl.where(m == float("-inf"), 0.0, m)
    w = tl.exp2(lse - m_safe[:, None])
    total = tl.sum(w, axis=1)
    total = tl.where(total > 0, total, 1.0)
    dst = out_ptr + b * sout_b + h[:, None] * sout_h
    o = tl.sum(x * w[:, :, None], axis=1) / total[:, None]
    tl.store(dst + tl.arange(0, DC)[None, :], o.to(out_ptr.dtype.element_ty), mask=g_ok[:, None])
    for c0 in range(DC, D, DC):
        dc = c0 + tl.arange(0, DC)
        x = tl.load(part + dc[None, None, :], mask=ok[:, :, None], other=0.0, cache_modifier=".cg")  # [G, S, DC]
        o = tl.sum(x * w[:, :, None], axis=1) / total[:, None]
        tl.store(dst + dc[None, :], o.to(out_ptr.dtype.element_ty), mask=g_ok[:, None])


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
                         workspace: tuple[Any, ...], sm_count: int, cfg: DecodeConfig = DecodeConfig(),
                         pdl: bool = False, prefetch: bool = True, l2_next: tuple[Any, bool] | None = None) -> Any:
    """q: float32 [B, Hq, D]; cache: bf16 or fp16 KVCache; seq_lens int32 [B] (incl. this token); out: float32
    [B, 1, Hq, D]; workspace from decode_workspace(B, 1, Hq, D, splits), with fused=True (its third
    tensor, the ticket counters) when cfg.fuse_combine: then one launch, no combine kernel. max_len fixes the launch.
    pdl: programmatic dependent launch for both kernels (see floorline.kernels.gemv); with it and
    prefetch, each program pulls its split's K/V lines into L2 before waiting on the previous kernel.
    l2_next=(tensor, evict_last), under PDL only: after the wait, the programs also ask L2 for that
    tensor's lines (a weight a later kernel reads; LaunchConfigs.prefetch_next)."""
    assert cache.kv_dtype in ("bf16", "fp16"), "decode_attention_f32 reads bf16/fp16 caches"
    B, hq, d = q.shape
    if q.stride(2) != 1:
        raise InputError("attention: q must have a contiguous head_dim")
    _launch(q, q.stride(0), q.stride(1), hq, cache, page_table, seq_lens, max_len, out, workspace, sm_count, cfg,
            pdl and prefetch, pdl, None, l2_next)
    return out


def decode_attention_rope_f32(qkv: Any, positions: Any, inv_freq: Any, cos_scale: float, q_gain: Any, k_gain: Any,
                              eps: float, cache: KVCache, page_table: Any, seq_lens: Any, *, q_heads: int,
                              max_len: int, out: Any, workspace: tuple[Any, ...], sm_count: int,
                              cfg: DecodeConfig = DecodeConfig(), pdl: bool = False, prefetch: bool = True,
                              l2_next: tuple[Any, bool] | None = None) -> Any:
    """QK-norm + RoPE + KV append + attention in one launch (then the split combine, unless
    cfg.fuse_combine; workspace as for decode_attention_f32): qkv is the raw
    float32 qkv GEMV output [B, (q_heads + 2 kv_heads) * D]; positions int32 [B] (this step's slot,
    seq_lens - 1); inv_freq float64 [D/2]; q_gain/k_gain [D] or None (no QK-norm). Same math as
    kernels.rope.qk_norm_rope followed by decode_attention_f32; the new k/v land in the cache too.
    l2_next: as for decode_attention_f32."""
    B = qkv.shape[0]
    d = cache.head_dim
    if qkv.shape[1] != (q_heads + 2 * cache.kv_heads) * d or qkv.stride(1) != 1:
        raise InputError(f"qkv: must be [B, {(q_heads + 2 * cache.kv_heads) * d}] row-contiguous, got {tuple(qkv.shape)}")
    if inv_freq.shape != (d // 2,) or inv_freq.dtype.itemsize != 8 or positions.shape[0] < B:
        raise InputError(f"rope: inv_freq must be float64 [{d // 2}] and positions [{B}]")
    rope = (positions, inv_freq, q_gain, k_gain, eps, cos_scale)
    _launch(qkv, qkv.stride(0), d, q_heads, cache, page_table, seq_lens, max_len, out, workspace, sm_count, cfg,
            pdl and prefetch, pdl, rope, l2_next)
    return out


def _launch(q: Any, sq_b: int, sq_h: int, hq: int, cache: KVCache, page_table: Any, seq_lens: Any, max_len: int,
            out: Any, workspace: tuple[Any, ...], sm_count: int, cfg: DecodeConfig, prefetch: bool, pdl: bool,
            rope: Any, l2_next: tuple[Any, bool] | None = None) -> None:
    if cache.kv_dtype not in ("bf16", "fp16") or cache.k.stride(3) != 1:
        raise InputError(f"attention: reads bf16/fp16 caches with a contiguous head_dim, got {cache.kv_dtype}")
    B, d, hk = q.shape[0], cache.head_dim, cache.kv_heads
    g = hq // hk
    splits, split_len = split_plan(B, hk, max_len, cfg, sm_count)
    o_part, lse = workspace[0], workspace[1]
    if o_part.shape[3] < splits:
        raise InputError(f"attention: workspace holds {o_part.shape[3]} splits, the launch needs {splits}")
    fuse = cfg.fuse_combine
    if fuse:
        counter = workspace[2] if len(workspace) > 2 else None
        if counter is None or str(counter.dtype) != "torch.int32" or counter.numel() < B * hk:
            raise InputError(f"attention: fuse_combine needs {B * hk} int32 ticket counters as the workspace's third "
                             "tensor: decode_workspace(..., fused=True)")
    else:
        counter = seq_lens  # never touched when the combine is a second launch
    pos, inv_freq, qg, kg, eps, cos_scale = rope if rope is not None else (seq_lens, q, q, q, 0.0, 1.0)
    norm = rope is not None and qg is not None
    if l2_next is not None and not l2_next[0].is_contiguous():
        raise InputError(f"attention: l2_next must be a contiguous tensor, got strides {l2_next[0].stride()}")
    # a prefetch is inline PTX (no interpreter path) and only pays while a PDL chain keeps HBM busy
    nx, nx_last = l2_next if l2_next is not None and pdl else (None, False)
    nx_line = 128 // nx.element_size() if nx is not None else 64  # elements per 128-byte line
    nx_lines = triton.cdiv(nx.numel(), nx_line) if nx is not None else 0
    _attn_kernel[(B, hk, splits)](
        q, cache.k, cache.v, page_table, seq_lens, o_part, lse, out, counter,
        sq_b, sq_h, cache.k.stride(0), cache.k.stride(1), cache.k.stride(2),
        page_table.stride(0), o_part.stride(0), o_part.stride(2), o_part.stride(3), lse.stride(0), lse.stride(2),
        out.stride(0), out.stride(2),
        cache.page_size, split_len, d**-0.5 * LOG2E,
        pos, inv_freq, qg if norm else q, kg if norm else q, hq, hk, eps, cos_scale,
        nx if nx is not None else q, nx_lines,
        G=g, D=d, BLOCK_M=max(16, triton.next_power_of_2(g)), BLOCK_N=cfg.block_n, UPCAST=_INTERPRET,
        PREFETCH=prefetch and _prefetch_ok(d), ROPE=rope is not None, NORM=norm, FUSE=fuse,
        # read by the fused merge only: constants otherwise, so the split count does not force a recompile
        BLOCK_G=max(2, triton.next_power_of_2(g)) if fuse else 2,
        BLOCK_S=max(2, triton.next_power_of_2(splits)) if fuse else 2,
        ONE_TILE=cfg.one_tile and split_len == cfg.block_n,
        NEXT=0 if nx is None else 2 if nx_last else 1, NEXT_LINE=nx_line,
        num_warps=cfg.num_warps, num_stages=cfg.num_stages, **pdl_kwargs(pdl),
    )
    if not fuse:
        _combine(o_part, lse, splits, out, pdl)
