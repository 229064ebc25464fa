"""Merge split-KV partial attention outputs: out = sum_s w_s o_s with w_s = 2**(lse_s - max) / sum.

One program per (sequence, query token, query head, D_CHUNK slice of head_dim), loading every
split's lse and its partial slice in one round trip each: at short contexts this kernel is on the
critical path, and a loop over splits would pay one memory latency per step. Splits that saw no key
carry lse = -inf and weigh nothing; a row where every split is empty (length 0) gets zeros, not NaN.
"""

from __future__ import annotations

from typing import Any

import triton
import triton.language as tl

D_CHUNK = 32


@triton.jit
def _combine_kernel(o_ptr, lse_ptr, out_ptr, n_splits, HQ, T,
                    so_b, so_t, so_h, so_s, sl_b, sl_t, sl_h, sout_b, sout_t, sout_h,
                    DC: tl.constexpr, BLOCK_S: tl.constexpr):
    pid = tl.program_id(0)
    h = pid % HQ
    t = (pid // HQ) % T
    b = pid // (HQ * T)
    d = tl.program_id(1) * DC + tl.arange(0, DC)
    s = tl.arange(0, BLOCK_S)
    s_ok = s < n_splits
    lse = tl.load(lse_ptr + b * sl_b + t * sl_t + h * sl_h + s, mask=s_ok, other=float("-inf"))
    m = tl.max(lse, axis=0)
    m_safe = tl.where(m == float("-inf"), 0.0, m)
    w = tl.exp2(lse - m_safe)
    total = tl.sum(w, axis=0)
    parts = tl.load(o_ptr + b * so_b + t * so_t + h * so_h + s[:, None] * so_s + d[None, :],
                    mask=s_ok[:, None] & (w[:, None] > 0), other=0.0)
    out = tl.sum(parts * w[:, None], axis=0) / tl.where(total > 0, total, 1.0)
    tl.store(out_ptr + b * sout_b + t * sout_t + h * sout_h + d, out.to(out_ptr.dtype.element_ty))


def combine_splits(o_part: Any, lse: Any, n_splits: int, out: Any) -> Any:
    """o_part: float32 [B, T, Hq, S, D]; lse: float32 [B, T, Hq, S] (log2 domain); out: [B, T, Hq, D]."""
    b, t, hq, _, d = o_part.shape
    block_s = max(2, triton.next_power_of_2(n_splits))
    dc = min(D_CHUNK, d, max(8, 4096 // block_s))  # keep the [splits, chunk] tile at <= 4096 floats
    _combine_kernel[(b * t * hq, d // dc)](
        o_part, lse, out, n_splits, hq, t,
        o_part.stride(0), o_part.stride(1), o_part.stride(2), o_part.stride(3),
        lse.stride(0), lse.stride(1), lse.stride(2), out.stride(0), out.stride(1), out.stride(2),
        DC=dc, BLOCK_S=block_s, num_warps=4)
    return out
