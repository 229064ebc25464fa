"""Paged KV cache: the layout every attention kernel reads, its allocation, and `kv_append`.

Layout (HND, one contiguous block per page and KV head, so a page streams as one run of bytes):
    k, v        [num_pages, kv_heads, page_size, head_dim]      bf16 | float8_e4m3fn (k only)
    v (fp8)     [num_pages, kv_heads, head_dim, page_size]      float8_e4m3fn, transposed: tokens are
                contiguous, so the P @ V dot reads V K-major (8-bit operands cannot be transposed
                by ldmatrix; token-major fp8 V made the kernel shared-memory bound, docs/notes)
                [num_pages, kv_heads, page_size, head_dim // 2]  uint8 (fp4: two E2M1 codes per byte)
    k/v_scale   [num_pages, kv_heads, page_size]                 float32 (fp8: one per token-head)
                [num_pages, kv_heads, page_size, head_dim // 32] uint8 (fp4: E8M0 exponent per 32 values)
A sequence's token t lives in page page_table[seq, t // page_size] at slot t % page_size. The page
table is int32 [batch, max_pages]; pages may be any permutation (tests shuffle them).

`contiguous_view(k)` turns a contiguous [batch, kv_heads, length, head_dim] tensor into a cache
with one page per sequence (page_size = length), which is how `page_size = 0` is measured.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import triton
import triton.language as tl

from floorline.errors import InputError

KV_DTYPES = ("bf16", "fp8", "fp4")
# fp16 K/V: the decoder's precision option (same bytes as bf16, 8x finer rounding, range +-65504;
# docs/model.md "Error budget"). Only allocate/append and the decoder's fp32-query attention
# (model/attention.py) take it; floorline.kernels.decode_attention does not, so it is not in KV_DTYPES.
DECODER_KV_FP16 = "fp16"
FP4_GROUP = 32  # values per E8M0 scale (OCP MX block size)


def bytes_per_token_head(kv_dtype: str, head_dim: int) -> float:
    """Bytes one token costs per KV head for K or for V, scales included."""
    if kv_dtype in ("bf16", "fp16"):
        return 2.0 * head_dim
    if kv_dtype == "fp8":
        return head_dim + 4.0  # e4m3 values + one float32 scale per token-head
    if kv_dtype == "fp4":
        return head_dim / 2 + head_dim / FP4_GROUP  # two codes per byte + one E8M0 byte per 32
    raise InputError(f"kv_dtype: must be one of {', '.join(KV_DTYPES)}, got {kv_dtype!r}")


@dataclass
class KVCache:
    """The tensors of one layer's paged cache. `rotation` (fp4 only) is the orthogonal matrix K and V
    were multiplied by before quantization (None: stored as given); decode undoes it."""

    k: Any
    v: Any
    kv_dtype: str
    page_size: int
    head_dim: int
    k_scale: Any = None
    v_scale: Any = None
    rotation: Any = None

    @property
    def num_pages(self) -> int:
        return self.k.shape[0]

    @property
    def kv_heads(self) -> int:
        return self.k.shape[1]

    @property
    def v_transposed(self) -> bool:
        return self.kv_dtype == "fp8"

    def nbytes(self) -> int:
        tensors = [self.k, self.v, self.k_scale, self.v_scale]
        return sum(t.numel() * t.element_size() for t in tensors if t is not None)


def check_kv_dtype(kv_dtype: str) -> None:
    if kv_dtype not in KV_DTYPES:
        raise InputError(f"kv_dtype: must be one of {', '.join(KV_DTYPES)}, got {kv_dtype!r}")


def allocate_kv_cache(num_pages: int, kv_heads: int, page_size: int, head_dim: int, kv_dtype: str,
                      device: Any = "cuda", *, rotate: bool = False, seed: int = 0) -> KVCache:
    """An uninitialised cache (torch.empty: callers must append before reading)."""
    import torch

    if kv_dtype != DECODER_KV_FP16:
        check_kv_dtype(kv_dtype)
    if page_size < 1:
        raise InputError(f"page_size: must be >= 1, got {page_size}")
    if head_dim not in (64, 128, 256):
        raise InputError(f"head_dim: must be 64, 128 or 256, got {head_dim}")
    shape = (num_pages, kv_heads, page_size, head_dim)
    if kv_dtype in ("bf16", DECODER_KV_FP16):
        if rotate:
            raise InputError("rotate: only fp4 caches are rotated")
        dt = torch.bfloat16 if kv_dtype == "bf16" else torch.float16
        return KVCache(torch.empty(shape, dtype=dt, device=device),
                       torch.empty(shape, dtype=dt, device=device), kv_dtype, page_size, head_dim)
    if kv_dtype == "fp8":
        if rotate:
            raise InputError("rotate: only fp4 caches are rotated")
        f8 = torch.float8_e4m3fn
        v_shape = (num_pages, kv_heads, head_dim, page_size)
        return KVCache(torch.empty(shape, dtype=f8, device=device), torch.empty(v_shape, dtype=f8, device=device),
                       "fp8", page_size, head_dim,
                       torch.empty(shape[:3], dtype=torch.float32, device=device),
                       torch.empty(shape[:3], dtype=torch.float32, device=device))
    from floorline.kernels.kv_quant_4bit import hadamard_rotation

    packed = (num_pages, kv_heads, page_size, head_dim // 2)
    scales = (num_pages, kv_heads, page_size, head_dim // FP4_GROUP)
    rot = hadamard_rotation(head_dim, seed, device) if rotate else None
    return KVCache(torch.empty(packed, dtype=torch.uint8, device=device),
                   torch.empty(packed, dtype=torch.uint8, device=device), "fp4", page_size, head_dim,
                   torch.empty(scales, dtype=torch.uint8, device=device),
                   torch.empty(scales, dtype=torch.uint8, device=device), rot)


def contiguous_view(k: Any, v: Any) -> KVCache:
    """A bf16 cache over contiguous [batch, kv_heads, length, head_dim] tensors, no copy: one page per
    sequence, page table = arange(batch)."""
    if k.dim() != 4 or k.shape != v.shape:
        raise InputError(f"k, v: must both be [batch, kv_heads, length, head_dim], got {tuple(k.shape)}, {tuple(v.shape)}")
    return KVCache(k, v, "bf16", k.shape[2], k.shape[3])


@triton.jit
def _append_bf16_kernel(src_ptr, dst_ptr, page_table_ptr, seq_ptr, pos_ptr,
                        s_tok, s_head, pt_stride, d_page, d_head, d_slot,
                        PAGE_SIZE, D: tl.constexpr):
    tok = tl.program_id(0)
    h = tl.program_id(1)
    seq = tl.load(seq_ptr + tok)
    pos = tl.load(pos_ptr + tok)
    page = tl.load(page_table_ptr + seq * pt_stride + pos // PAGE_SIZE).to(tl.int64)
    offs = tl.arange(0, D)
    x = tl.load(src_ptr + tok * s_tok + h * s_head + offs)
    dst = dst_ptr + page * d_page + h * d_head + (pos % PAGE_SIZE) * d_slot
    tl.store(dst + offs, x.to(dst_ptr.dtype.element_ty))


def _check_append(cache: KVCache, k: Any, v: Any, page_table: Any, seq_ids: Any, positions: Any) -> None:
    import torch

    n = k.shape[0]
    if k.dim() != 3 or k.shape != v.shape or k.shape[1:] != (cache.kv_heads, cache.head_dim):
        raise InputError(f"k, v: must be [tokens, {cache.kv_heads}, {cache.head_dim}], got {tuple(k.shape)}, {tuple(v.shape)}")
    for name, t in (("seq_ids", seq_ids), ("positions", positions)):
        if t.shape != (n,) or t.dtype != torch.int32:
            raise InputError(f"{name}: must be int32 [{n}], got {t.dtype} {tuple(t.shape)}")
    if page_table.dim() != 2 or page_table.dtype != torch.int32:
        raise InputError(f"page_table: must be int32 [batch, max_pages], got {page_table.dtype} {tuple(page_table.shape)}")


def kv_append(cache: KVCache, k: Any, v: Any, page_table: Any, seq_ids: Any, positions: Any) -> None:
    """Write new tokens into their pages, quantizing for fp8/fp4 caches.

    k, v: [tokens, kv_heads, head_dim] (bf16/fp16/fp32); seq_ids, positions: int32 [tokens], token i
    goes to sequence seq_ids[i] at position positions[i]. The caller has already put enough pages in
    page_table[seq] to hold that position. For a rotated fp4 cache, k and v are rotated here first.
    """
    _check_append(cache, k, v, page_table, seq_ids, positions)
    if k.shape[0] == 0:
        return
    if cache.kv_dtype == "fp8":
        from floorline.kernels.kv_quant_fp8 import append_fp8

        append_fp8(cache, k, v, page_table, seq_ids, positions)
        return
    if cache.kv_dtype == "fp4":
        from floorline.kernels.kv_quant_4bit import append_fp4

        append_fp4(cache, k, v, page_table, seq_ids, positions)
        return
    for src, dst in ((k, cache.k), (v, cache.v)):
        src = src.contiguous()
        _append_bf16_kernel[(src.shape[0], cache.kv_heads)](
            src, dst, page_table, seq_ids, positions, src.stride(0), src.stride(1), page_table.stride(0),
            dst.stride(0), dst.stride(1), dst.stride(2), cache.page_size, D=cache.head_dim)


# Error budgets (rel-L2 of the attention output), the one place tests and benches read them from.
# KERNEL: ours vs a float64 attention over exactly what the cache stores; what is left is bf16
#   probabilities/output rounding (2**-8 relative) and fp16 tiles for the quantized formats.
# QUANT: ours vs a float64 attention over the unquantized K/V, on the accuracy report's realistic
#   data (Gaussian, 2% outlier channels, spread key channel scales): the price of the format.
KERNEL_REL_L2 = {"bf16": 1e-2, "fp8": 1e-2, "fp4": 1e-2}
QUANT_REL_L2 = {"bf16": 1e-2, "fp8": 0.12, "fp4": 0.80, "fp4+hadamard": 0.35}
