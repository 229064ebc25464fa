"""FP8 (e4m3) KV quantization on append: one float32 scale per token and KV head.

scale = amax(|x|) / 448 over the head_dim values of one token-head, so every token-head uses the
whole e4m3 range and an outlier channel costs precision only within its own token. Decode folds the
scale into the score (K) and the probability (V), so dequantization is one convert per value.
"""

from __future__ import annotations

from typing import Any

import triton
import triton.language as tl

E4M3_MAX = 448.0


@triton.jit
def _append_fp8_kernel(src_ptr, dst_ptr, scale_ptr, page_table_ptr, seq_ptr, pos_ptr,
                       s_tok, s_head, pt_stride, d_page, d_head, d_slot, d_dim, sc_page, sc_head,
                       PAGE_SIZE, D: tl.constexpr, FMAX: tl.constexpr):
    tok = tl.program_id(0)
    h = tl.program_id(1)
    seq = tl.load(seq_ptr + tok)
    pos = tl.load(pos_ptr + tok)
    page = tl.load(page_table_ptr + seq * pt_stride + pos // PAGE_SIZE).to(tl.int64)
    slot = pos % PAGE_SIZE
    offs = tl.arange(0, D)
    x = tl.load(src_ptr + tok * s_tok + h * s_head + offs).to(tl.float32)
    amax = tl.max(tl.abs(x), axis=0)
    scale = tl.where(amax > 0, amax / FMAX, 1.0)
    q = tl.clamp(x / scale, -FMAX, FMAX)
    tl.store(dst_ptr + page * d_page + h * d_head + slot * d_slot + offs * d_dim, q.to(dst_ptr.dtype.element_ty))
    tl.store(scale_ptr + page * sc_page + h * sc_head + slot, scale)


def append_fp8(cache: Any, k: Any, v: Any, page_table: Any, seq_ids: Any, positions: Any) -> None:
    """kv_append for an fp8 cache (call kv_cache.kv_append, which checks the arguments)."""
    for src, dst, sc, transposed in ((k, cache.k, cache.k_scale, False), (v, cache.v, cache.v_scale, True)):
        src = src.contiguous()
        # V pages are [.., head_dim, page_size] (kv_cache.py says why): token stride 1, channel stride page_size
        slot_stride, dim_stride = (dst.stride(3), dst.stride(2)) if transposed else (dst.stride(2), dst.stride(3))
        _append_fp8_kernel[(src.shape[0], cache.kv_heads)](
            src, dst, sc, page_table, seq_ids, positions, src.stride(0), src.stride(1), page_table.stride(0),
            dst.stride(0), dst.stride(1), slot_stride, dim_stride, sc.stride(0), sc.stride(1), cache.page_size,
            D=cache.head_dim, FMAX=E4M3_MAX)
