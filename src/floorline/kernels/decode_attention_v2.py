"""Decode attention, variant v2: the same split-KV algorithm as decode_attention's v1 kernel with the
roles of the two dot operands swapped, per-block scales applied outside the dots, and an optional
combine fused into the last program of each (sequence, KV head).

Why (docs/notes/attention.md, run 3): v1 computes S = Q K^T with the tiny query tile (G x T <= 16
rows) as the M side, so Triton uses mma.sync with both operands staged through shared memory, and a
quantized K/V tile takes a register -> shared -> register trip after its convert (fp8: 194
registers, 3.4x bf16's instructions per byte; fp4: 10x). v2 computes the transposes instead:
    S^T [N, M] = K [N, D] @ Q^T [D, M]        O^T [D, M] += V^T [D, N] @ P^T [N, M]
so the streamed K/V tile (64-128 tokens) is the M side: a Hopper warpgroup MMA can take it straight
from registers after the convert, and only the small Q^T / P^T tiles live in shared memory.
Scales: fp8 scales are per token, so they multiply rows of S^T and of P^T, never the K/V elements.
fp4 values are decoded to fp16 bit patterns (value x 2**-14) with integer ops only and multiplied in
fp16 by a per-block scale relative to the token's largest block (exact; no fp32 round trip); the
token's own factor multiplies its row of S^T / P^T.

FUSE_COMBINE: each program writes its partial result, then takes a ticket from a per-(sequence, KV
head) counter; the program that takes the last ticket merges all splits of its rows and resets the
counter to 0 (so a CUDA graph replays without a memset). Saves the second launch at short contexts.
"""

from __future__ import annotations

import triton
import triton.language as tl


@triton.jit
def _decode_kernel_v2(
    q_ptr, k_ptr, v_ptr, ks_ptr, vs_ptr, pt_ptr, len_ptr, o_ptr, lse_ptr, out_ptr, cnt_ptr,
    sq_b, sq_t, sq_h,
    sk_page, sk_head, sk_slot,
    sv_page, sv_head, sv_slot, sv_dim,
    ss_page, ss_head, ss_slot,
    pt_stride, so_b, so_t, so_h, so_s, sl_b, sl_t, sl_h, sout_b, sout_t, sout_h,
    split_len, n_splits, window, qk_scale, PAGE_SIZE: tl.constexpr,
    T: tl.constexpr, G: tl.constexpr, D: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
    SCALAR_PAGE: tl.constexpr, V_T: tl.constexpr,
    KV_DTYPE: tl.constexpr, UPCAST_BF16: tl.constexpr, FUSE_COMBINE: tl.constexpr, BLOCK_S: tl.constexpr,
    FP8_MMA: tl.constexpr, ALIGN_HINT: tl.constexpr = False,
):
    b = tl.program_id(0)
    hk = tl.program_id(1)
    split = tl.program_id(2)
    seq_len = tl.load(len_ptr + b)

    rows = tl.arange(0, BLOCK_M)  # the query rows are the N side of every dot now
    t_row = rows // G
    h_row = hk * G + rows % G
    row_ok = rows < G * T
    q_pos = seq_len - T + t_row

    start = split * split_len
    end = tl.minimum(start + split_len, seq_len)
    if window > 0:
        lo = tl.maximum(seq_len - T - window + 1, 0)
        start = tl.maximum(start, (lo // BLOCK_N) * BLOCK_N)

    q_col = q_ptr + b * sq_b + t_row[None, :] * sq_t + h_row[None, :] * sq_h  # [1, M]
    NB: tl.constexpr = D // 32  # fp4 scale blocks per token
    if KV_DTYPE == "fp4":
        # Q^T with even and odd channels apart (a byte holds channels 2j and 2j + 1)
        j2 = 2 * tl.arange(0, D // 2)[:, None]
        qt_lo = tl.load(q_col + j2, mask=row_ok[None, :], other=0.0).to(tl.float16)  # [D/2, M]
        qt_hi = tl.load(q_col + j2 + 1, mask=row_ok[None, :], other=0.0).to(tl.float16)
        acc_lo = tl.zeros([D // 2, BLOCK_M], dtype=tl.float32)
        acc_hi = tl.zeros([D // 2, BLOCK_M], dtype=tl.float32)
    else:
        d = tl.arange(0, D)
        qt = tl.load(q_col + d[:, None], mask=row_ok[None, :], other=0.0)  # [D, M]
        if KV_DTYPE == "fp8" and FP8_MMA:
            # q as the sum of two e4m3 tiles (hi + residual): 4 + 4 significant bits hold a bf16's 8
            # exactly (down to e4m3's subnormal floor, 2**-16 of the row's largest element), so K and
            # V stay e4m3 all the way into the FP8 tensor cores. Per column (query row), q is scaled
            # by a power of two to [128, 256); the column factor goes back on the score.
            q32 = qt.to(tl.float32)
            qa = tl.max(tl.abs(q32), axis=0)
            qf = tl.where(qa > 0, 128.0 / _pow2_floor(tl.maximum(qa, 1e-30)), 1.0)  # a power of two: the scaling is exact
            q32 = q32 * qf[None, :]
            qt_hi, qt_lo = _split_e4m3(q32)
            col_scale = qk_scale / qf  # [M]
        elif KV_DTYPE == "fp8":
            qt = qt.to(tl.float16)
        acc = tl.zeros([D, BLOCK_M], dtype=tl.float32)
    m_i = tl.full([BLOCK_M], float("-inf"), dtype=tl.float32)
    l_i = tl.zeros([BLOCK_M], dtype=tl.float32)

    pt_row = pt_ptr + b * pt_stride
    head_k = hk.to(tl.int64) * sk_head
    head_v = hk.to(tl.int64) * sv_head
    if KV_DTYPE == "fp8" and FP8_MMA:
        # full blocks load unmasked (16-byte copies; a mask along the token axis of V^T would break
        # them), the one partial block is peeled off and masked: stale slots may hold NaN bytes,
        # and an e4m3 operand goes into the MMA untouched, so nothing could zero them afterwards
        full_end = start + (tl.maximum(end - start, 0) // BLOCK_N) * BLOCK_N
        for n0 in range(start, full_end, BLOCK_N):
            acc, m_i, l_i = _fp8_mma_block(
                k_ptr, v_ptr, ks_ptr, vs_ptr, pt_row, n0, end, head_k, head_v, hk, sk_page, sk_slot, sv_page,
                sv_dim, ss_page, ss_head, ss_slot, qt_hi, qt_lo, col_scale, q_pos, window, acc, m_i, l_i,
                PAGE_SIZE, D, BLOCK_N, SCALAR_PAGE, False, ALIGN_HINT)
        if full_end < end:
            acc, m_i, l_i = _fp8_mma_block(
                k_ptr, v_ptr, ks_ptr, vs_ptr, pt_row, full_end, end, head_k, head_v, hk, sk_page, sk_slot,
                sv_page, sv_dim, ss_page, ss_head, ss_slot, qt_hi, qt_lo, col_scale, q_pos, window, acc, m_i,
                l_i, PAGE_SIZE, D, BLOCK_N, SCALAR_PAGE, True, ALIGN_HINT)
    else:
        for n0 in range(start, end, BLOCK_N):
            offs_n = n0 + tl.arange(0, BLOCK_N)
            n_ok = offs_n < end
            if SCALAR_PAGE:
                page = tl.load(pt_row + n0 // PAGE_SIZE).to(tl.int64)
                slot = _aligned_slot(n0, PAGE_SIZE, BLOCK_N, ALIGN_HINT)
            else:
                page = tl.load(pt_row + offs_n // PAGE_SIZE, mask=n_ok, other=0).to(tl.int64)
                slot = offs_n % PAGE_SIZE
            k_off = page * sk_page + head_k + slot * sk_slot  # [N]
            if V_T:
                v_off = page * sv_page + head_v + slot
            else:
                v_off = page * sv_page + head_v + slot * sv_slot
            if KV_DTYPE == "fp4":
                # bytes as [N, D/32, 16]: the middle axis is the scale block, so each block's fp16
                # relative scale ([N, D/32, 1]) broadcasts without a gather; merging the last two
                # axes afterwards is free. Each token's largest block exponent leaves the tile and
                # multiplies its row of S^T (K) or of P^T (V) instead.
                byte = tl.arange(0, NB)[None, :, None] * 16 + tl.arange(0, 16)[None, None, :]
                ok3 = n_ok[:, None, None]
                kp = tl.load(k_ptr + k_off[:, None, None] + byte, mask=ok3, other=0)
                vp = tl.load(v_ptr + v_off[:, None, None] + byte, mask=ok3, other=0)
                sc_off = page * ss_page + hk.to(tl.int64) * ss_head + slot * ss_slot
                nb = tl.arange(0, NB)[None, :]
                ke = tl.load(ks_ptr + sc_off[:, None] + nb, mask=n_ok[:, None], other=0).to(tl.int32)  # [N, NB]
                ve = tl.load(vs_ptr + sc_off[:, None] + nb, mask=n_ok[:, None], other=0).to(tl.int32)
                k_rel, k_row = _e8m0_split(ke)
                v_rel, v_row = _e8m0_split(ve)
                k_lo = tl.reshape(_nibble_lo(kp) * k_rel[:, :, None], [BLOCK_N, D // 2])
                k_hi = tl.reshape(_nibble_hi(kp) * k_rel[:, :, None], [BLOCK_N, D // 2])
                s = (tl.dot(k_lo, qt_lo) + tl.dot(k_hi, qt_hi)) * k_row[:, None]
            else:
                k = tl.load(k_ptr + k_off[:, None] + d[None, :], mask=n_ok[:, None], other=0.0)  # [N, D]
                if V_T:  # fp8: V^T pages, tokens contiguous; whole block loaded, tail zeroed after the convert
                    vt_ptrs = v_ptr + v_off[None, :] + d[:, None] * sv_dim  # [D, N]
                    if SCALAR_PAGE:
                        vt = tl.load(vt_ptrs)
                    else:
                        vt = tl.load(vt_ptrs, mask=n_ok[None, :], other=0.0)
                else:
                    vt = tl.trans(tl.load(v_ptr + v_off[:, None] + d[None, :], mask=n_ok[:, None], other=0.0))
                if KV_DTYPE == "fp8":
                    sc_off = page * ss_page + hk.to(tl.int64) * ss_head + slot * ss_slot
                    ks = tl.load(ks_ptr + sc_off, mask=n_ok, other=0.0)
                    vs = tl.load(vs_ptr + sc_off, mask=n_ok, other=0.0)
                    s = tl.dot(k.to(tl.float16), qt) * ks[:, None]
                elif UPCAST_BF16:
                    s = tl.dot(k.to(tl.float32), qt.to(tl.float32))
                else:
                    s = tl.dot(k, qt)
            s = s * qk_scale
            visible = n_ok[:, None] & (offs_n[:, None] <= q_pos[None, :])
            if window > 0:
                visible = visible & (offs_n[:, None] > q_pos[None, :] - window)
            s = tl.where(visible, s, float("-inf"))
            m_new = tl.maximum(m_i, tl.max(s, axis=0))
            m_safe = tl.where(m_new == float("-inf"), 0.0, m_new)
            alpha = tl.exp2(m_i - m_safe)
            p = tl.exp2(s - m_safe[None, :])  # [N, M]
            l_i = l_i * alpha + tl.sum(p, axis=0)
            m_i = m_new
            if KV_DTYPE == "fp4":
                # per-token factors can span many binades: relative to the block's largest, in fp16
                v_top = tl.max(v_row, axis=0)
                v_top = tl.where(v_top > 0, v_top, 1.0)
                pv = (p * (v_row / v_top)[:, None]).to(tl.float16)
                v_lo = tl.trans(tl.reshape(_nibble_lo(vp) * v_rel[:, :, None], [BLOCK_N, D // 2]))
                v_hi = tl.trans(tl.reshape(_nibble_hi(vp) * v_rel[:, :, None], [BLOCK_N, D // 2]))
                acc_lo = acc_lo * alpha[None, :] + tl.dot(v_lo, pv) * v_top
                acc_hi = acc_hi * alpha[None, :] + tl.dot(v_hi, pv) * v_top
            elif KV_DTYPE == "fp8":
                vt16 = tl.where(n_ok[None, :], vt.to(tl.float16), 0.0) if SCALAR_PAGE else vt.to(tl.float16)
                acc = acc * alpha[None, :] + tl.dot(vt16, (p * vs[:, None]).to(tl.float16))
            elif UPCAST_BF16:
                acc = acc * alpha[None, :] + tl.dot(vt.to(tl.float32), p.to(tl.bfloat16).to(tl.float32))
            else:
                acc = acc * alpha[None, :] + tl.dot(vt, p.to(vt.dtype))

    l_safe = tl.where(l_i > 0, l_i, 1.0)
    lse = tl.where(l_i > 0, m_i + tl.log2(l_safe), float("-inf"))
    o_col = o_ptr + b * so_b + t_row[None, :] * so_t + h_row[None, :] * so_h + split * so_s  # [1, M]
    if KV_DTYPE == "fp4":
        ch = 2 * tl.arange(0, D // 2)[:, None]
        tl.store(o_col + ch, acc_lo / l_safe[None, :], mask=row_ok[None, :])
        tl.store(o_col + ch + 1, acc_hi / l_safe[None, :], mask=row_ok[None, :])
    else:
        tl.store(o_col + d[:, None], acc / l_safe[None, :], mask=row_ok[None, :])
    tl.store(lse_ptr + b * sl_b + t_row * sl_t + h_row * sl_h + split, lse, mask=row_ok)

    if FUSE_COMBINE:
        # Partials of this program must be visible before its ticket: barrier (every thread's
        # stores issued) then a gpu-scope acq_rel atomic. The last ticket's program reads with .cg
        # (L2) so no stale L1 line can serve it.
        tl.debug_barrier()
        ticket = tl.atomic_add(cnt_ptr + b * tl.num_programs(1) + hk, 1, sem="acq_rel", scope="gpu")
        if ticket == n_splits - 1:
            _combine_rows(o_ptr, lse_ptr, out_ptr, b, t_row, h_row, row_ok, n_splits,
                          so_b, so_t, so_h, so_s, sl_b, sl_t, sl_h, sout_b, sout_t, sout_h,
                          D, BLOCK_M, BLOCK_S)
            tl.atomic_xchg(cnt_ptr + b * tl.num_programs(1) + hk, 0, sem="relaxed", scope="gpu")


@triton.jit
def _aligned_slot(n0, PAGE_SIZE: tl.constexpr, BLOCK_N: tl.constexpr, ALIGN_HINT: tl.constexpr):
    """Slots of a block that lies in one page. n0 is always a multiple of BLOCK_N, but Triton 3.6
    cannot prove it for a loop variable: without the hint, token-contiguous (fp8 V^T) tiles load as
    scalar bytes outside the cp.async pipeline (device SASS, round 0: 64 LDG.E.U8 per thread)."""
    slot0 = n0 % PAGE_SIZE
    if ALIGN_HINT:
        slot0 = tl.multiple_of(slot0, 16)
    return slot0 + tl.arange(0, BLOCK_N)


@triton.jit
def _fp8_mma_block(k_ptr, v_ptr, ks_ptr, vs_ptr, pt_row, n0, end, head_k, head_v, hk, sk_page, sk_slot, sv_page,
                   sv_dim, ss_page, ss_head, ss_slot, qt_hi, qt_lo, col_scale, q_pos, window, acc, m_i, l_i,
                   PAGE_SIZE: tl.constexpr, D: tl.constexpr, BLOCK_N: tl.constexpr, SCALAR_PAGE: tl.constexpr,
                   MASKED: tl.constexpr, ALIGN_HINT: tl.constexpr):
    """One block of the FP8 tensor-core path: K and V^T go from memory into the MMA as e4m3, the
    per-token scales multiply the [N, M] score and probability tiles."""
    offs_n = n0 + tl.arange(0, BLOCK_N)
    n_ok = offs_n < end
    d = tl.arange(0, D)
    if SCALAR_PAGE:
        page = tl.load(pt_row + n0 // PAGE_SIZE).to(tl.int64)
        slot = _aligned_slot(n0, PAGE_SIZE, BLOCK_N, ALIGN_HINT)
    else:
        page = tl.load(pt_row + offs_n // PAGE_SIZE, mask=n_ok, other=0).to(tl.int64)
        slot = offs_n % PAGE_SIZE
    k_ptrs = k_ptr + (page * sk_page + head_k + slot * sk_slot)[:, None] + d[None, :]  # [N, D]
    vt_ptrs = v_ptr + (page * sv_page + head_v + slot)[None, :] + d[:, None] * sv_dim  # [D, N]
    sc_off = page * ss_page + hk.to(tl.int64) * ss_head + slot * ss_slot
    if MASKED:
        k = tl.load(k_ptrs, mask=n_ok[:, None], other=0.0)
        vt = tl.load(vt_ptrs, mask=n_ok[None, :], other=0.0)
        ks = tl.load(ks_ptr + sc_off, mask=n_ok, other=0.0)
        vs = tl.load(vs_ptr + sc_off, mask=n_ok, other=0.0)
    else:
        k = tl.load(k_ptrs)
        vt = tl.load(vt_ptrs)
        ks = tl.load(ks_ptr + sc_off)
        vs = tl.load(vs_ptr + sc_off)
    s = tl.dot(k, qt_lo, acc=tl.dot(k, qt_hi))  # [N, M], exact products, fp32 sums
    s = s * ks[:, None] * col_scale[None, :]
    visible = n_ok[:, None] & (offs_n[:, None] <= q_pos[None, :])
    if window > 0:
        visible = visible & (offs_n[:, None] > q_pos[None, :] - window)
    s = tl.where(visible, s, float("-inf"))
    m_new = tl.maximum(m_i, tl.max(s, axis=0))
    m_safe = tl.where(m_new == float("-inf"), 0.0, m_new)
    alpha = tl.exp2(m_i - m_safe)
    p = tl.exp2(s - m_safe[None, :])
    l_i = l_i * alpha + tl.sum(p, axis=0)
    # P x vs as hi + residual e4m3 tiles (~8 significant bits, like v1's bf16 P); the block's largest
    # scale maps below 256 (e4m3 max is 448)
    vmax = tl.max(vs, axis=0)
    vf = tl.where(vmax > 0, 128.0 / _pow2_floor(tl.maximum(vmax, 1e-30)), 1.0)
    pv = p * (vs * vf)[:, None]
    p_hi, p_lo = _split_e4m3(pv)
    acc = acc * alpha[None, :] + tl.dot(vt, p_lo, acc=tl.dot(vt, p_hi)) * (1.0 / vf)
    return acc, m_new, l_i


@triton.jit
def _split_e4m3(x):
    """x (float32, |x| < 448) as hi + lo e4m3 tiles. hi keeps x's top 4 significant bits by masking
    (exact in e4m3 whatever the convert's rounding mode; Triton's interpreter does not round to
    nearest), so lo = x - hi holds the next 4 bits: a bf16 input (8 bits) is split exactly."""
    hi = (x.to(tl.int32, bitcast=True) & -1048576).to(tl.float32, bitcast=True).to(tl.float8e4nv)  # 0xFFF00000
    lo = (x - hi.to(tl.float32)).to(tl.float8e4nv)
    return hi, lo


@triton.jit
def _pow2_floor(x):
    """2**floor(log2(x)) for positive finite float32 x, exactly (the exponent bits alone)."""
    return (x.to(tl.int32, bitcast=True) & 0x7F800000).to(tl.float32, bitcast=True)


@triton.jit
def _combine_rows(o_ptr, lse_ptr, out_ptr, b, t_row, h_row, row_ok, n_splits,
                  so_b, so_t, so_h, so_s, sl_b, sl_t, sl_h, sout_b, sout_t, sout_h,
                  D: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_S: tl.constexpr):
    """Merge every split of this program's query rows. One program reads splits x rows x D floats
    (32 splits x 16 rows x 128 = 256 KB), so it moves [rows, splits, DC] tiles of <= 8192 floats, one
    round trip per D-chunk, not one per split; with many splits the separate combine kernel (which
    spreads this over b x T x Hq x D/32 programs) is the better choice, and the bench times both."""
    DC: tl.constexpr = max(1, min(D, 8192 // (BLOCK_M * BLOCK_S)))
    s_idx = tl.arange(0, BLOCK_S)
    ok = row_ok[:, None] & (s_idx[None, :] < n_splits)
    lse = tl.load(lse_ptr + b * sl_b + t_row[:, None] * sl_t + h_row[:, None] * sl_h + s_idx[None, :],
                  mask=ok, other=float("-inf"), cache_modifier=".cg")  # [M, S]
    m = tl.max(lse, axis=1)
    m_safe = tl.where(m == float("-inf"), 0.0, m)
    w = tl.exp2(lse - m_safe[:, None])
    total = tl.sum(w, axis=1)
    w = w / tl.where(total > 0, total, 1.0)[:, None]
    part = (o_ptr + b * so_b + t_row[:, None, None] * so_t + h_row[:, None, None] * so_h
            + s_idx[None, :, None] * so_s)  # [M, S, 1]
    dst = out_ptr + b * sout_b + t_row[:, None] * sout_t + h_row[:, None] * sout_h
    live = (ok & (w > 0))[:, :, None]
    for c0 in range(0, D, DC):
        dc = c0 + tl.arange(0, DC)
        x = tl.load(part + dc[None, None, :], mask=live, other=0.0, cache_modifier=".cg")  # [M, S, DC]
        o = tl.sum(x * w[:, :, None], axis=1)
        tl.store(dst + dc[None, :], o.to(out_ptr.dtype.element_ty), mask=row_ok[:, None])


@triton.jit
def _nibble_lo(x):
    """Low E2M1 code of each byte -> fp16 of its value x 2**-14: sign to bit 15, exponent+mantissa to
    bits 9-11 (E2M1's subnormal 0.5 lands on fp16's subnormal range). Integer ops only."""
    c = x.to(tl.int16)
    return (((c & 8) << 12) | ((c & 7) << 9)).to(tl.float16, bitcast=True)


@triton.jit
def _nibble_hi(x):
    c = x.to(tl.int16)
    return (((c & 0x80) << 8) | ((c & 0x70) << 5)).to(tl.float16, bitcast=True)


@triton.jit
def _e8m0_split(e):
    """E8M0 exponents [N, blocks] (int32; 0 = all-zero block) -> (fp16 relative scale per block,
    float32 factor per token) with value = E2M1 x 2**-14 (the nibble's fp16 bits) x rel x row.
    rel = 2**(e - e_max + 15) <= 2**15 keeps an fp16 product <= 12, exact down to 2**-24 (blocks
    2**24 below the token's largest would flush; their contribution is below fp32 rounding of the
    score anyway); row = 2**(e_max - 128) goes on the token's row of the score / probabilities."""
    e_max = tl.max(e, axis=1)
    d = e - e_max[:, None] + 30  # fp16 exponent field of 2**(e - e_max + 15)
    rel = tl.where((e > 0) & (d > 0), d << 10, 0).to(tl.int16).to(tl.float16, bitcast=True)
    row = tl.where(e_max > 1, (e_max - 1) << 23, 0).to(tl.float32, bitcast=True)
    return rel, row
