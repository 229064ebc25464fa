"""Merge split-KV partial attention outputs: out = sum_s w_s o_s with w_s = 2**(lse_s - max) / sum.

One program per (sequence, query token, query head); splits that saw no key carry lse = -inf and
weigh nothing, and a row where every split is empty (length 0) gets a zero output, not NaN.
"""

from __future__ import annotations

from typing import Any

import triton
import triton.language as tl


@triton.jit
def _combine_kernel(o_ptr, lse_ptr, out_ptr, n_splits, HQ, T,
                    so_b, so_t, so_h, so_s, sl_b, sl_t, sl_h, sout_b, sout_t, sout_h,
                    D: tl.constexpr, BLOCK_S: tl.constexpr):
    pid = tl.program_id(0)
    h = pid % HQ
    t = (pid // HQ) % T
    b = pid // (HQ * T)
    lse_row = lse_ptr + b * sl_b + t * sl_t + h * sl_h
    o_row = o_ptr + b * so_b + t * so_t + h * so_h
    m = float("-inf")
    for s0 in range(0, n_splits, BLOCK_S):  # chunks keep the register tile small at 100+ splits
        s = s0 + tl.arange(0, BLOCK_S)
        m = tl.maximum(m, tl.max(tl.load(lse_row + s, mask=s < n_splits, other=float("-inf")), axis=0))
    m_safe = tl.where(m == float("-inf"), 0.0, m)
    d = tl.arange(0, D)
    total = 0.0
    out = tl.zeros([D], dtype=tl.float32)
    for s0 in range(0, n_splits, BLOCK_S):
        s = s0 + tl.arange(0, BLOCK_S)
        w = tl.exp2(tl.load(lse_row + s, mask=s < n_splits, other=float("-inf")) - m_safe)
        parts = tl.load(o_row + s[:, None] * so_s + d[None, :], mask=w[:, None] > 0, other=0.0)
        out += tl.sum(parts * w[:, None], axis=0)
        total += tl.sum(w, axis=0)
    out = out / tl.where(total > 0, total, 1.0)
    tl.store(out_ptr + b * sout_b + t * sout_t + h * sout_h + d, out.to(out_ptr.dtype.element_ty))


def combine_splits(o_part: Any, lse: Any, n_splits: int, out: Any) -> Any:
    """o_part: float32 [B, T, Hq, S, D]; lse: float32 [B, T, Hq, S] (log2 domain); out: [B, T, Hq, D]."""
    b, t, hq, _, d = o_part.shape
    _combine_kernel[(b * t * hq,)](
        o_part, lse, out, n_splits, hq, t,
        o_part.stride(0), o_part.stride(1), o_part.stride(2), o_part.stride(3),
        lse.stride(0), lse.stride(1), lse.stride(2), out.stride(0), out.stride(1), out.stride(2),
        D=d, BLOCK_S=min(16, max(2, triton.next_power_of_2(n_splits))), num_warps=4)
    return out
