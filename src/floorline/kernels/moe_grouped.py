"""Grouped MoE expert GEMM for batch > 1: every expert's weights are read from HBM once per call, and
multiplied on tensor cores by all the tokens that chose that expert.

Held to the floor that counts every distinct expert the batch hits (at batch 64 with top-8 of 128,
~126 experts per layer: nearly the whole model per step). One program owns one (expert, BLOCK_N-row
tile) and streams that tile in [BLOCK_N, BLOCK_K] steps (pipelined through shared memory), so
the weight stream is as wide as a dense GEMM's. Programs of experts nobody chose exit
at once, so unselected experts are never read.

Grouping: `order` lists the slots sorted by expert id, ascending; each program counts, over the S slot->expert ids
(S <= 512 ints, from L2), the slots of its expert and of lower experts, which gives its run in
`order` (reductions to scalars: nothing stays live in registers across the weight stream). An expert
sees ~4 tokens at batch 64 (S / E), so the token tile is small: TOKENS rows.

Precision: x is float32 (the residual stream); W is exact in bf16 (FP8 e4m3 converts to bf16
exactly). Each token row is split into bf16 hi + lo halves (~16 mantissa bits, as in gemv.py), and
the halves ride in ONE dot as rows [0, T) = hi and [T, 2T) = lo of a 2T-row tile; the epilogue adds
row t and row T + t. That keeps gemv.py's accuracy with one tensor-core dot instead of two, and the
2T = 16-row tile is the smallest tl.dot takes. Accumulation is fp32. An expert with more than T
tokens loops over chunks of T, re-reading its tile (from L2 while it is hot).

SWIGLU fuses silu(gate) * up over [E, 2I, H] gate-up weights (gate rows n, up rows I + n), so the
intermediate never round-trips through HBM. Slot s = token * k + j; with routing weights the output
rows come out weighted, and the next add_rmsnorm sums a token's k rows (and split-K partials).
Split-K layout without split-K work: there are plenty of programs at batch > 1 (thousands), and
splitting K would shrink each one's stream (more start latency per byte), so a caller's split_k
only shapes the output: row slot * split_k gets the whole sum, the other split_k - 1 rows zeros
(the same bytes a split would have written as partials).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import triton
import triton.language as tl

from floorline.errors import InputError
from floorline.kernels.gemv import _INTERPRET, split_hi_lo
from floorline.kernels.swiglu import silu_mul


@dataclass(frozen=True)
class GroupedConfig:
    block_n: int = 64  # weight rows per program (per half for SwiGLU)
    block_k: int = 128
    tokens: int = 8  # token rows per chunk; the dot tile is 2 x tokens rows (hi + lo)
    num_warps: int = 4
    num_stages: int = 3


# sm_90 compile here (scripts/regs_moe_grouped.py: the JIT's divisibility, cuobjdump -res-usage),
# qwen3-30b-a3b shapes, no spills. The weight stream needs ~50+ KiB in flight per SM (4.5 TB/s x
# ~1.5 us / 132 SMs), so the defaults favour many small resident CTAs with deep pipelines:
#   gate-up+SwiGLU bf16 32x64, 4 warps, 4 stages: 80 regs, 38 KiB smem -> 5 CTAs/SM, each with up
#     to 3 x 8 KiB of weights in flight (32x128 at 3 stages: 128 regs, 4 CTAs; 64x128 at 4 warps
#     spills at 255 regs);
#   down bf16 32x64, 4 warps, 5 stages: 72 regs, 34 KiB -> 6 CTAs/SM.
# Not yet measured; scripts/bench_moe_grouped.py sweeps the alternatives on the device.
GATE_UP = GroupedConfig(block_n=32, block_k=64, num_warps=4, num_stages=4)
DOWN = GroupedConfig(block_n=32, block_k=64, num_warps=4, num_stages=5)


@triton.jit
def _moe_grouped_kernel(x_ptr, w_ptr, scale_ptr, slot_e_ptr, order_ptr, slot_w_ptr, out_ptr,
                        S, N, K, INTER, ROW_DIV, N_TILES, s_x, s_we, s_wn, s_se, s_out,
                        SPLIT: tl.constexpr, SWIGLU: tl.constexpr, HAS_SCALE: tl.constexpr,
                        HAS_WEIGHT: tl.constexpr, TOKENS: tl.constexpr, BLOCK_N: tl.constexpr,
                        BLOCK_K: tl.constexpr, S_P2: tl.constexpr, UPCAST: tl.constexpr):
    pid = tl.program_id(0)
    e = pid // N_TILES
    s = tl.arange(0, S_P2)
    se = tl.load(slot_e_ptr + s, mask=s < S, other=2**30)
    cnt = tl.sum((se == e).to(tl.int32), axis=0)
    if cnt > 0:
        first = tl.sum((se < e).to(tl.int32), axis=0)  # where e's run starts in the sorted order
        n = (pid % N_TILES) * BLOCK_N + tl.arange(0, BLOCK_N)
        nmask = n < N
        e64 = e.to(tl.int64)
        wg = w_ptr + e64 * s_we + n.to(tl.int64)[:, None] * s_wn
        wu = wg + INTER * s_wn
        ROWS: tl.constexpr = 2 * TOKENS
        is_lo = (tl.arange(0, ROWS) >= TOKENS)[:, None]
        for c0 in range(0, cnt, TOKENS):
            t2 = c0 + tl.arange(0, ROWS) % TOKENS
            valid2 = t2 < cnt
            slot2 = tl.load(order_ptr + first + t2, mask=valid2, other=0)
            xrows = x_ptr + (slot2 // ROW_DIV).to(tl.int64)[:, None] * s_x
            acc_g = tl.zeros([ROWS, BLOCK_N], dtype=tl.float32)
            acc_u = tl.zeros([ROWS, BLOCK_N], dtype=tl.float32)
            for k0 in range(0, K, BLOCK_K):
                k = k0 + tl.arange(0, BLOCK_K)
                kmask = k < K
                m2 = nmask[:, None] & kmask[None, :]
                xv = tl.load(xrows + k[None, :], mask=valid2[:, None] & kmask[None, :], other=0.0)
                hi, lo = split_hi_lo(xv.to(tl.float32), UPCAST)
                xc = tl.where(is_lo, lo, hi)
                acc_g += tl.dot(xc, tl.trans(tl.load(wg + k[None, :], mask=m2, other=0.0).to(xc.dtype)))
                if SWIGLU:
                    acc_u += tl.dot(xc, tl.trans(tl.load(wu + k[None, :], mask=m2, other=0.0).to(xc.dtype)))
            g = tl.sum(tl.reshape(acc_g, (2, TOKENS, BLOCK_N)), axis=0)  # hi rows + lo rows
            if HAS_SCALE:
                g = g * tl.load(scale_ptr + e64 * s_se + n, mask=nmask, other=0.0)[None, :]
            if SWIGLU:
                u = tl.sum(tl.reshape(acc_u, (2, TOKENS, BLOCK_N)), axis=0)
                if HAS_SCALE:
                    u = u * tl.load(scale_ptr + e64 * s_se + INTER + n, mask=nmask, other=0.0)[None, :]
                g = silu_mul(g, u)
            t = c0 + tl.arange(0, TOKENS)
            valid = t < cnt
            slot = tl.load(order_ptr + first + t, mask=valid, other=0)
            if HAS_WEIGHT:
                g = g * tl.load(slot_w_ptr + slot, mask=valid, other=0.0)[:, None]
            orow = out_ptr + (slot.to(tl.int64) * SPLIT)[:, None] * s_out + n[None, :]
            omask = valid[:, None] & nmask[None, :]
            tl.store(orow, g.to(out_ptr.dtype.element_ty), mask=omask)
            for j in tl.static_range(1, SPLIT):
                tl.store(orow + j * s_out, tl.zeros_like(g).to(out_ptr.dtype.element_ty), mask=omask)


def moe_grouped(x: Any, w: Any, slot_experts: Any, order: Any, out: Any, *, scale: Any = None, slot_weights: Any = None,
                swiglu: bool = False, split_k: int = 1, cfg: GroupedConfig = GroupedConfig()) -> Any:
    """x: float32 [R, K] (R = tokens when a token's k slots share its row, R = S for per-slot rows);
    w: [E, N_w, K] bf16/fp8; slot_experts: int32 [S <= 4096]; order: int32 [S], an ascending
    argsort of slot_experts (fast.py computes it once per layer for both calls); out: [S * split_k, N] with
    N = N_w/2 if swiglu else N_w; scale: float32 [E, N_w] per-channel (FP8) or None;
    slot_weights: float32 [S] multiplies each output row (the routing weights).
    split_k > 1 (not with swiglu): rows slot * split_k + j, j < split_k, sum to the output (the
    consumer adds them); here row j = 0 holds the sum and the others zeros (see the module doc)."""
    S = slot_experts.numel()
    R, K = x.shape
    E, n_w, kw = w.shape
    N = n_w // 2 if swiglu else n_w
    if kw != K or w.stride(2) != 1 or x.stride(1) != 1:
        raise InputError(f"moe_grouped: x [R, {K}] and w [E, N, {K}] with contiguous rows, got {tuple(x.shape)}, {tuple(w.shape)}")
    if slot_experts.dim() != 1 or slot_experts.stride(0) != 1 or not 1 <= S <= 4096:
        raise InputError(f"moe_grouped: slot_experts must be a contiguous int32 [1..4096], got {tuple(slot_experts.shape)}")
    if order.shape != (S,) or order.stride(0) != 1:
        raise InputError(f"moe_grouped: order must be a contiguous int32 [{S}] (argsort of slot_experts)")
    if S % R and R % S:
        raise InputError(f"moe_grouped: slots ({S}) and x rows ({R}) must divide one another")
    if split_k > 1 and swiglu:
        raise InputError("moe_grouped: split_k needs a linear epilogue (not swiglu)")
    if out.shape != (S * split_k, N) or out.stride(1) != 1:
        raise InputError(f"moe_grouped: out must be [{S * split_k}, {N}], got {tuple(out.shape)}")
    if scale is not None and scale.shape != (E, n_w):
        raise InputError(f"moe_grouped: scale must be [{E}, {n_w}], got {tuple(scale.shape)}")
    if slot_weights is not None and (slot_weights.numel() != S or slot_weights.stride(-1) != 1):
        raise InputError(f"moe_grouped: slot_weights must be a contiguous float32 [{S}]")
    bn, bk = cfg.block_n, cfg.block_k
    n_tiles = triton.cdiv(N, bn)
    _moe_grouped_kernel[(E * n_tiles,)](
        x, w, scale if scale is not None else x, slot_experts, order, slot_weights if slot_weights is not None else x, out,
        S, N, K, n_w // 2, max(1, S // R), n_tiles, x.stride(0), w.stride(0), w.stride(1),
        scale.stride(0) if scale is not None else 0, out.stride(0),
        SPLIT=split_k, SWIGLU=swiglu, HAS_SCALE=scale is not None, HAS_WEIGHT=slot_weights is not None,
        TOKENS=cfg.tokens, BLOCK_N=bn, BLOCK_K=bk, S_P2=triton.next_power_of_2(S), UPCAST=_INTERPRET,
        num_warps=cfg.num_warps, num_stages=cfg.num_stages,
    )
    return out
