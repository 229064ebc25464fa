"""Dense GEMV for decode: out[B, N] = x[B, K] @ W[N, K]^T * scale[N], W bf16 or FP8 e4m3.

Held to the HBM read ceiling: W is read exactly once per call, x (float32, a few KiB) comes from L2.
Activations stay float32: at batch 1 the product runs on CUDA cores in fp32; at batch 2..64 it runs
on bf16 tensor cores with x split into hi + lo bf16 halves (two dots), which keeps ~16 mantissa bits
of x instead of bf16's 8, so the fast path stays within 1e-3 of the float64 reference over a full
48-layer model. W is exact in bf16 (and FP8 converts to bf16 exactly), so no W precision is lost.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import triton
import triton.language as tl

from floorline.errors import InputError

# The CPU interpreter multiplies bf16 tl.dot operands as raw integers; upcast there (same math).
_INTERPRET = os.environ.get("TRITON_INTERPRET") == "1"


@dataclass(frozen=True)
class GemvConfig:
    block_n: int = 16
    block_k: int = 256
    num_warps: int = 4
    num_stages: int = 3
    split_k: int = 1  # > 1: partial sums [B, split_k, N] that the consumer adds (see gemv())


@triton.jit
def split_hi_lo(x, UPCAST: tl.constexpr):
    """x fp32 -> (hi, lo) such that hi + lo carries ~16 mantissa bits, each a bf16 dot operand."""
    if UPCAST:
        return x, tl.zeros_like(x)
    hi = x.to(tl.bfloat16)
    lo = (x - hi.to(tl.float32)).to(tl.bfloat16)
    return hi, lo


@triton.jit
def _gemv_kernel(x_ptr, w_ptr, scale_ptr, out_ptr, B, N, K, K_SPLIT, s_x, s_w, s_out, s_split,
                 HAS_SCALE: tl.constexpr, BLOCK_B: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
                 UPCAST: tl.constexpr):
    n = tl.program_id(0) * BLOCK_N + tl.arange(0, BLOCK_N)
    nmask = n < N
    k_lo = tl.program_id(1) * K_SPLIT
    k_hi = tl.minimum(k_lo + K_SPLIT, K)
    out_ptr += tl.program_id(1) * s_split
    w_rows = w_ptr + n.to(tl.int64)[:, None] * s_w
    if BLOCK_B == 1:
        acc2 = tl.zeros([BLOCK_N, BLOCK_K], dtype=tl.float32)
        for k0 in range(k_lo, k_hi, BLOCK_K):
            k = k0 + tl.arange(0, BLOCK_K)
            kmask = k < k_hi
            w = tl.load(w_rows + k[None, :], mask=nmask[:, None] & kmask[None, :], other=0.0)
            x = tl.load(x_ptr + k, mask=kmask, other=0.0)
            acc2 += w.to(tl.float32) * x[None, :]
        acc = tl.sum(acc2, axis=1)
        if HAS_SCALE:
            acc = acc * tl.load(scale_ptr + n, mask=nmask, other=0.0)
        tl.store(out_ptr + n, acc.to(out_ptr.dtype.element_ty), mask=nmask)
    else:
        b = tl.arange(0, BLOCK_B)
        bmask = b < B
        acc = tl.zeros([BLOCK_B, BLOCK_N], dtype=tl.float32)
        for k0 in range(k_lo, k_hi, BLOCK_K):
            k = k0 + tl.arange(0, BLOCK_K)
            kmask = k < k_hi
            w = tl.load(w_rows + k[None, :], mask=nmask[:, None] & kmask[None, :], other=0.0)
            x = tl.load(x_ptr + b[:, None] * s_x + k[None, :], mask=bmask[:, None] & kmask[None, :], other=0.0)
            hi, lo = split_hi_lo(x.to(tl.float32), UPCAST)
            wt = tl.trans(w.to(hi.dtype))
            acc += tl.dot(hi, wt) + tl.dot(lo, wt)
        if HAS_SCALE:
            acc = acc * tl.load(scale_ptr + n, mask=nmask, other=0.0)[None, :]
        tl.store(out_ptr + b[:, None] * s_out + n[None, :], acc.to(out_ptr.dtype.element_ty),
                 mask=bmask[:, None] & nmask[None, :])


def block_b(batch: int) -> int:
    return 1 if batch == 1 else max(16, triton.next_power_of_2(batch))


def gemv(x: Any, w: Any, out: Any, scale: Any = None, cfg: GemvConfig = GemvConfig()) -> Any:
    """x: float32 [B <= 64, K]; w: bf16/fp8 [N, K] (rows contiguous); scale: float32 [N] or None;
    out: [B, N], or [B, split_k, N] partial sums when cfg.split_k > 1 (the consumer adds them:
    add_rmsnorm sums its delta rows), which spreads a short-and-wide W over more SMs."""
    B, K = x.shape
    N = w.shape[0]
    S = cfg.split_k
    if w.shape[1] != K or w.stride(1) != 1 or x.stride(1) != 1:
        raise InputError(f"gemv: x [B, {K}] and w [N, {K}] with contiguous rows, got x {tuple(x.shape)} w {tuple(w.shape)}")
    if not 1 <= B <= 64:
        raise InputError(f"gemv: batch must be 1..64, got {B}")
    want = (B, N) if S == 1 else (B, S, N)
    if tuple(out.shape) != want or out.stride(-1) != 1:
        raise InputError(f"gemv: out must be {list(want)}, got {tuple(out.shape)}")
    if scale is not None and scale.shape != (N,):
        raise InputError(f"gemv: scale must be [{N}], got {tuple(scale.shape)}")
    bb = block_b(B)
    bn = cfg.block_n if bb == 1 else max(16, cfg.block_n)
    bk = cfg.block_k if bb == 1 else min(cfg.block_k, 64)  # 128 spills registers at BLOCK_B 16 (sm_90)
    k_split = triton.cdiv(triton.cdiv(K, S), bk) * bk
    _gemv_kernel[(triton.cdiv(N, bn), S)](
        x, w, scale if scale is not None else x, out, B, N, K, k_split, x.stride(0), w.stride(0), out.stride(0),
        out.stride(1) if S > 1 else 0,
        HAS_SCALE=scale is not None, BLOCK_B=bb, BLOCK_N=bn, BLOCK_K=bk, UPCAST=_INTERPRET,
        num_warps=cfg.num_warps, num_stages=cfg.num_stages,
    )
    return out
