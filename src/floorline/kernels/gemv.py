"""Dense GEMV for decode: out[B, N] = x[B, K] @ W[N, K]^T * scale[N], W bf16 or FP8 e4m3.

Held to the HBM read ceiling: W is read exactly once per call, x (float32, a few KiB) comes from L2.
Batch 1 can also fold the neighbours in (the decoder's fused step, model/fast.py): NORM=True takes
the raw float32 residual as x and applies RMSNorm * gain on the fly (the sum of squares rides the
same K loop, and rsqrt(mean) scales the finished dot product, so no extra pass and no extra launch);
ACCUM=True adds the result into out with float32 atomics (out is the residual: o-proj and expert
outputs land there directly, split-K slices included). PDL=True launches with programmatic dependent
launch: the kernel lets its successor launch at once and waits on its predecessor (griddepcontrol)
before touching any activation, so launch latency and ramp overlap the previous kernel's tail.
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
    # batch-1 expert GEMV (kernels.moe_gemv.moe_gemv_b1) K loop: load tile i+1 into registers before
    # tile i's multiply-adds. Triton does not software-pipeline plain register loads, so without it
    # a program has one tile in flight; this doubles the bytes each program keeps in flight.
    double_buffer: bool = False
    # batch-1 expert GEMV: weight loads marked evict_first. Each expert row is read once per step, so
    # keeping it in L2 only pushes out lines that another kernel prefetched (session 5: expert-down's
    # early prefetch beside gate-up's 50 MB stream seemed to be evicted before use).
    evict_first: bool = False
    # batch 1, when the program's K slice is one tile (ONE_SHOT): load the weight tile into registers
    # before the PDL wait instead of only prefetching its lines into L2, so the first bytes are in hand
    # when the predecessor finishes (weights are no kernel's output). Without PDL only the order changes.
    # Read by gemv, router_b1 and moe_gemv_b1 (expert-down: the ids are read early too, after a
    # wait_first gate-up, as its L2 prefetch does; registers cannot be evicted by gate-up's stream).
    preload: bool = False


@triton.jit
def split_hi_lo(x, UPCAST: tl.constexpr):
    """x fp32 -> (hi, lo) such that hi + lo carries ~16 mantissa bits, each a bf16 dot operand."""
    if UPCAST:
        return x, tl.zeros_like(x)
    hi = x.to(tl.bfloat16)
    lo = (x - hi.to(tl.float32)).to(tl.bfloat16)
    return hi, lo


@triton.jit
def pdl_enter(PDL: tl.constexpr):
    """Under programmatic dependent launch: let the next kernel launch now (it waits in its own
    pdl_enter), then wait until the previous kernel has finished and its writes are visible. Every
    kernel of a PDL chain must call this before it reads or writes any activation."""
    if PDL:
        tl.extra.cuda.gdc_launch_dependents()
        tl.extra.cuda.gdc_wait()


@triton.jit
def prefetch_l2(ptrs):
    """Ask L2 to fetch the lines at ptrs (a hint: no data comes back, nothing waits on it). A PDL
    kernel calls it for inputs no earlier kernel writes (weights) before it waits on its
    predecessor, so its weight stream starts while the previous kernel is still finishing."""
    tl.inline_asm_elementwise("prefetch.global.L2 [$1];\n\tmov.u32 $0, 0;", "=r,l", [ptrs],
                              dtype=tl.int32, is_pure=False, pack=1)


@triton.jit
def prefetch_share(ptr, n_lines, LINE: tl.constexpr, EVICT_LAST: tl.constexpr, BLOCK: tl.constexpr = 512):
    """Ask L2 for this program's share of the n_lines 128-byte lines at ptr (LINE elements each), the
    grid's programs splitting them evenly. For a weight a *later* kernel reads (LaunchConfigs.prefetch_next):
    a latency-bound kernel leaves HBM idle, so its programs can stream the next dense weight meanwhile.
    EVICT_LAST marks the lines to outlive the evict-first expert streams between here and their reader."""
    nprog = tl.num_programs(0) * tl.num_programs(1) * tl.num_programs(2)
    pid = (tl.program_id(0) * tl.num_programs(1) + tl.program_id(1)) * tl.num_programs(2) + tl.program_id(2)
    per = tl.cdiv(n_lines, nprog)
    lo = pid * per
    hi = tl.minimum(lo + per, n_lines)
    for l0 in range(lo, hi, BLOCK):
        line = tl.minimum(l0 + tl.arange(0, BLOCK), hi - 1)  # no mask on a prefetch: repeat the last line
        p = ptr + line.to(tl.int64) * LINE
        if EVICT_LAST:
            tl.inline_asm_elementwise("prefetch.global.L2::evict_last [$1];\n\tmov.u32 $0, 0;", "=r,l", [p],
                                      dtype=tl.int32, is_pure=False, pack=1)
        else:
            prefetch_l2(p)


@triton.jit
def preload_tile(w_rows, k_lo, k_hi, nmask, BLOCK_K: tl.constexpr, PDL: tl.constexpr):
    """GemvConfig.preload: a one-tile program's weight tile [rows, BLOCK_K] into registers, then (PDL)
    the wait, so the tile is in hand when the previous kernel finishes; weights are no kernel's output."""
    if PDL:
        tl.extra.cuda.gdc_launch_dependents()
    k = k_lo + tl.arange(0, BLOCK_K)
    w = tl.load(w_rows + k[None, :], mask=nmask[:, None] & (k < k_hi)[None, :], other=0.0)
    if PDL:
        tl.extra.cuda.gdc_wait()
    return w


@triton.jit
def _gemv_kernel(x_ptr, w_ptr, scale_ptr, out_ptr, gain_ptr, B, N, K, K_SPLIT, s_x, s_w, s_out, s_split, eps,
                 HAS_SCALE: tl.constexpr, BLOCK_B: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
                 UPCAST: tl.constexpr, NORM: tl.constexpr = False, ACCUM: tl.constexpr = False,
                 PDL: tl.constexpr = False, PREFETCH: tl.constexpr = False, ONE_SHOT: tl.constexpr = False,
                 PRELOAD: tl.constexpr = False):
    n = tl.program_id(0) * BLOCK_N + tl.arange(0, BLOCK_N)
    nmask = n < N
    k_lo = tl.program_id(1) * K_SPLIT
    k_hi = tl.minimum(k_lo + K_SPLIT, K)
    out_ptr += tl.program_id(1) * s_split
    w_rows = w_ptr + n.to(tl.int64)[:, None] * s_w
    if PRELOAD:  # batch 1, ONE_SHOT: the whole weight tile in registers before the wait
        w_pre = preload_tile(w_rows, k_lo, k_hi, nmask, BLOCK_K, PDL)
    elif PREFETCH:  # weights are no kernel's output: start their stream before waiting (PDL)
        tl.extra.cuda.gdc_launch_dependents()
        for k0 in range(k_lo, k_hi, BLOCK_K):
            lines = k0 + tl.arange(0, BLOCK_K // 64) * 64  # one pointer per 128 B of bf16 (fp8: two per line)
            prefetch_l2(w_rows + lines[None, :])
        tl.extra.cuda.gdc_wait()
    else:
        pdl_enter(PDL)
    if BLOCK_B == 1:
        if ONE_SHOT:  # the K slice is one tile: every load issued at once, no [N, K] accumulator
            k = k_lo + tl.arange(0, BLOCK_K)
            kmask = k < k_hi
            if PRELOAD:
                w = w_pre
            else:
                w = tl.load(w_rows + k[None, :], mask=nmask[:, None] & kmask[None, :], other=0.0)
            x = tl.load(x_ptr + k, mask=kmask, other=0.0)
            ss = x * x
            if NORM:
                x = x * tl.load(gain_ptr + k, mask=kmask, other=0.0).to(tl.float32)
            acc = tl.sum(w.to(tl.float32) * x[None, :], axis=1)
        else:
            acc2 = tl.zeros([BLOCK_N, BLOCK_K], dtype=tl.float32)
            ss = tl.zeros([BLOCK_K], dtype=tl.float32)
            for k0 in range(k_lo, k_hi, BLOCK_K):
                k = k0 + tl.arange(0, BLOCK_K)
                kmask = k < k_hi
                w = tl.load(w_rows + k[None, :], mask=nmask[:, None] & kmask[None, :], other=0.0)
                x = tl.load(x_ptr + k, mask=kmask, other=0.0)
                if NORM:  # x is the raw residual; the program spans all of K (split_k 1)
                    ss += x * x
                    x = x * tl.load(gain_ptr + k, mask=kmask, other=0.0).to(tl.float32)
                acc2 += w.to(tl.float32) * x[None, :]
            acc = tl.sum(acc2, axis=1)
        if NORM:
            acc = acc * tl.rsqrt(tl.sum(ss, axis=0) / K + eps)
        if HAS_SCALE:
            acc = acc * tl.load(scale_ptr + n, mask=nmask, other=0.0)
        if ACCUM:
            tl.atomic_add(out_ptr + n, acc, mask=nmask, sem="relaxed")
        else:
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


def pdl_kwargs(pdl: bool) -> dict[str, Any]:
    """Launch keywords for a kernel that calls pdl_enter: PDL is a launch attribute (sm_90+)."""
    return {"PDL": True, "launch_pdl": True} if pdl else {}


def gemv(x: Any, w: Any, out: Any, scale: Any = None, cfg: GemvConfig = GemvConfig(), *,
         norm: tuple[Any, float] | None = None, accumulate: bool = False, pdl: bool = False,
         prefetch: bool = True) -> Any:
    """x: float32 [B <= 64, K]; w: bf16/fp8 [N, K] (rows contiguous); scale: float32 [N] or None;
    out: [B, N], or [B, split_k, N] partial sums when cfg.split_k > 1 (the consumer adds them:
    add_rmsnorm sums its delta rows), which spreads a short-and-wide W over more SMs.
    Batch 1 only: norm=(gain [K], eps) computes (rmsnorm(x) * gain) @ W^T from the raw residual x
    (needs split_k 1); accumulate=True does out[1, N] += x @ W^T (float32 atomics, any split_k).
    pdl=True launches with programmatic dependent launch (sm_90+; see the module docstring) and, at
    batch 1 unless prefetch=False, has each program prefetch its weight rows into L2 before it waits."""
    B, K = x.shape
    N = w.shape[0]
    S = cfg.split_k
    if (norm is not None or accumulate) and B != 1:
        raise InputError(f"gemv: norm/accumulate are batch-1 modes, got batch {B}")
    if norm is not None and (S != 1 or norm[0].shape != (K,)):
        raise InputError(f"gemv: norm needs split_k 1 and a gain of [{K}], got split_k {S}, {tuple(norm[0].shape)}")
    if w.shape[1] != K or w.stride(1) != 1 or x.stride(1) != 1:
        raise InputError(f"gemv: x [B, {K}] and w [N, {K}] with contiguous rows, got x {tuple(x.shape)} w {tuple(w.shape)}")
    if not 1 <= B <= 64:
        raise InputError(f"gemv: batch must be 1..64, got {B}")
    want = (B, N) if S == 1 or accumulate else (B, S, N)
    if tuple(out.shape) != want or out.stride(-1) != 1 or (accumulate and out.dtype.itemsize != 4):
        raise InputError(f"gemv: out must be {list(want)}{' float32' if accumulate else ''}, got {tuple(out.shape)}")
    if scale is not None and scale.shape != (N,):
        raise InputError(f"gemv: scale must be [{N}], got {tuple(scale.shape)}")
    bb = block_b(B)
    bn = cfg.block_n if bb == 1 else max(16, cfg.block_n)
    bk = cfg.block_k if bb == 1 else min(cfg.block_k, 64)  # 128 spills registers at BLOCK_B 16 (sm_90)
    k_split = triton.cdiv(triton.cdiv(K, S), bk) * bk
    _gemv_kernel[(triton.cdiv(N, bn), S)](
        x, w, scale if scale is not None else x, out, norm[0] if norm is not None else x, B, N, K, k_split,
        x.stride(0), w.stride(0), out.stride(0), out.stride(1) if S > 1 and not accumulate else 0,
        norm[1] if norm is not None else 0.0,
        HAS_SCALE=scale is not None, BLOCK_B=bb, BLOCK_N=bn, BLOCK_K=bk, UPCAST=_INTERPRET,
        NORM=norm is not None, ACCUM=accumulate, num_warps=cfg.num_warps, num_stages=cfg.num_stages,
        PREFETCH=pdl and prefetch and bb == 1 and bk >= 64, ONE_SHOT=bb == 1 and k_split == bk,
        PRELOAD=cfg.preload and bb == 1 and k_split == bk, **pdl_kwargs(pdl),
    )
    return out
