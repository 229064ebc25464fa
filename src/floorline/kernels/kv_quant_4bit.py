"""4-bit KV quantization on append: MXFP4 (OCP Microscaling), E2M1 codes with an E8M0 scale per 32.

Format, per token, KV head and block of 32 consecutive head_dim values:
  - 32 E2M1 codes (sign, 2 exponent bits, 1 mantissa bit: magnitudes 0, .5, 1, 1.5, 2, 3, 4, 6),
    two per byte, element 2i in the low nibble and 2i+1 in the high nibble;
  - one E8M0 byte e, scale 2**(e - 127). We pick e = ceil(log2(amax / 6)) so the block's largest value
    maps to at most 6 and nothing clips (OCP's floor(log2(amax)) - 2 clips up to 25% of the top code).
    e = 0 encodes an all-zero block (decode reads it as scale 0).
Bytes per token and head: head_dim / 2 + head_dim / 32 (68 for head_dim 128), 3.76x less than bf16.

Remedy for outliers (docs/attention.md has the before/after): with `rotate=True` the cache stores
K·R and V·R for a fixed random-sign Hadamard matrix R (orthogonal), which spreads an outlier channel
over all channels of its 32-blocks' neighbours. Scores are unchanged because (qR)·(kR) = q·k; decode
rotates q and un-rotates the output.
"""

from __future__ import annotations

from typing import Any

import triton
import triton.language as tl

E8M0_BIAS = 127
E8M0_MAX_EXP = 112  # decode builds 2**(e - 127 + 14) as float32; keep it finite


def hadamard_rotation(d: int, seed: int = 0, device: Any = "cpu") -> Any:
    """Orthogonal d x d matrix: Sylvester Hadamard / sqrt(d) times a fixed random sign per row."""
    import torch

    h = torch.ones(1, 1, dtype=torch.float64)
    while h.shape[0] < d:
        h = torch.cat([torch.cat([h, h], 1), torch.cat([h, -h], 1)], 0)
    g = torch.Generator().manual_seed(seed)
    signs = torch.randint(0, 2, (d,), generator=g, dtype=torch.int64).to(torch.float64) * 2 - 1
    return (signs[:, None] * h / d**0.5).to(torch.float32).to(device)


@triton.jit
def _append_fp4_kernel(src_ptr, dst_ptr, scale_ptr, page_table_ptr, seq_ptr, pos_ptr,
                       s_tok, s_head, pt_stride, d_page, d_head, d_slot, sc_page, sc_head, sc_slot,
                       PAGE_SIZE, D: tl.constexpr, MAX_EXP: tl.constexpr):
    tok = tl.program_id(0)
    h = tl.program_id(1)
    seq = tl.load(seq_ptr + tok)
    pos = tl.load(pos_ptr + tok)
    page = tl.load(page_table_ptr + seq * pt_stride + pos // PAGE_SIZE).to(tl.int64)
    slot = pos % PAGE_SIZE
    G: tl.constexpr = D // 32
    # [G, 16] pairs: pair j of group g holds elements 32g + 2j (low nibble) and 32g + 2j + 1 (high)
    pair = tl.arange(0, G)[:, None] * 16 + tl.arange(0, 16)[None, :]
    src = src_ptr + tok * s_tok + h * s_head
    x0 = tl.load(src + 2 * pair).to(tl.float32)
    x1 = tl.load(src + 2 * pair + 1).to(tl.float32)
    amax = tl.max(tl.maximum(tl.abs(x0), tl.abs(x1)), axis=1)  # [G]
    e = tl.ceil(tl.log2(amax / 6.0))
    e = tl.minimum(tl.maximum(e, -126.0), MAX_EXP * 1.0)
    e = tl.where(amax > 0, e, -127.0)
    inv = tl.exp2(-e)[:, None]
    c0 = _e2m1_code(x0 * inv)
    c1 = _e2m1_code(x1 * inv)
    packed = (c0 | (c1 << 4)).to(tl.uint8)
    tl.store(dst_ptr + page * d_page + h * d_head + slot * d_slot + pair, packed)
    sc = (e + 127.0).to(tl.int32).to(tl.uint8)
    tl.store(scale_ptr + page * sc_page + h * sc_head + slot * sc_slot + tl.arange(0, G), sc)


@triton.jit
def _e2m1_code(y):
    """Nearest E2M1 code (ties to the smaller magnitude) of y, |y| <= 6 after scaling."""
    a = tl.abs(y)
    code = ((a > 0.25).to(tl.int32) + (a > 0.75).to(tl.int32) + (a > 1.25).to(tl.int32)
            + (a > 1.75).to(tl.int32) + (a > 2.5).to(tl.int32) + (a > 3.5).to(tl.int32)
            + (a > 5.0).to(tl.int32))
    return code | tl.where(y < 0, 8, 0)


def append_fp4(cache: Any, k: Any, v: Any, page_table: Any, seq_ids: Any, positions: Any) -> None:
    """kv_append for an fp4 cache (call kv_cache.kv_append, which checks the arguments)."""
    for src, dst, sc in ((k, cache.k, cache.k_scale), (v, cache.v, cache.v_scale)):
        if cache.rotation is not None:
            src = (src.float() @ cache.rotation.to(src.device))
        src = src.contiguous()
        _append_fp4_kernel[(src.shape[0], cache.kv_heads)](
            src, dst, sc, page_table, seq_ids, positions, src.stride(0), src.stride(1), page_table.stride(0),
            dst.stride(0), dst.stride(1), dst.stride(2), sc.stride(0), sc.stride(1), sc.stride(2),
            cache.page_size, D=cache.head_dim, MAX_EXP=E8M0_MAX_EXP)
