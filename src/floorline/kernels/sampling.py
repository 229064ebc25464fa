"""Next token from float32 logits: greedy (argmax) or sampled (temperature, top-p).

Greedy: two stages (per-block max/argmax over the vocabulary, then per row), so a 152K vocabulary
spreads over many SMs at batch 1. Ties pick the lowest index, as torch.argmax does.
Sampled: one program per row. It finds the top-p cut as a threshold on the log-probability by
bisection (24 passes over the row, each from L2), then draws with the Gumbel-max trick over the
tokens above the cut: argmax(logit/T + Gumbel noise) is an exact sample from softmax(logit/T)
restricted to that set, with no sort and no cumulative sum. The noise comes from Philox seeded by
a device tensor, so a CUDA graph replays with a new seed each step without a host call.
"""

from __future__ import annotations

from typing import Any

import triton
import triton.language as tl

from floorline.errors import InputError
from floorline.kernels.gemv import pdl_enter, pdl_kwargs

GREEDY_BLOCK = 4096
_SEARCH_STEPS = 24
_SEARCH_FLOOR = -40.0  # log-probabilities below max - 40 carry < 1e-17 of the mass


@triton.jit
def _argmax_partial_kernel(logits_ptr, val_ptr, idx_ptr, V, s_row, NB, BLOCK: tl.constexpr, PDL: tl.constexpr = False):
    pdl_enter(PDL)
    row = tl.program_id(0)
    blk = tl.program_id(1)
    offs = blk * BLOCK + tl.arange(0, BLOCK)
    x = tl.load(logits_ptr + row * s_row + offs, mask=offs < V, other=float("-inf")).to(tl.float32)
    best = tl.max(x, axis=0)
    idx = tl.min(tl.where(x == best, offs, 2147483647), axis=0)
    tl.store(val_ptr + row * NB + blk, best)
    tl.store(idx_ptr + row * NB + blk, idx)


@triton.jit
def _argmax_final_kernel(val_ptr, idx_ptr, out_ptr, NB, BLOCK: tl.constexpr, PDL: tl.constexpr = False):
    pdl_enter(PDL)
    row = tl.program_id(0)
    offs = tl.arange(0, BLOCK)
    v = tl.load(val_ptr + row * NB + offs, mask=offs < NB, other=float("-inf"))
    i = tl.load(idx_ptr + row * NB + offs, mask=offs < NB, other=2147483647)
    best = tl.max(v, axis=0)
    tl.store(out_ptr + row, tl.min(tl.where(v == best, i, 2147483647), axis=0).to(out_ptr.dtype.element_ty))


def greedy_workspace(batch: int, vocab: int, device: Any) -> tuple[Any, Any]:
    import torch

    nb = triton.cdiv(vocab, GREEDY_BLOCK)
    return (torch.empty(batch, nb, dtype=torch.float32, device=device),
            torch.empty(batch, nb, dtype=torch.int32, device=device))


def greedy(logits: Any, out: Any, workspace: tuple[Any, Any] | None = None, pdl: bool = False) -> Any:
    """logits: float32 [B, V]; out: int [B] <- argmax per row. pdl: see kernels.gemv."""
    B, V = logits.shape
    if logits.stride(1) != 1 or out.shape != (B,):
        raise InputError(f"greedy: logits [B, V] row-contiguous and out [{B}], got {tuple(out.shape)}")
    vals, idx = workspace or greedy_workspace(B, V, logits.device)
    nb = triton.cdiv(V, GREEDY_BLOCK)
    _argmax_partial_kernel[(B, nb)](logits, vals, idx, V, logits.stride(0), nb, BLOCK=GREEDY_BLOCK, num_warps=8,
                                    **pdl_kwargs(pdl))
    _argmax_final_kernel[(B,)](vals, idx, out, nb, BLOCK=max(16, triton.next_power_of_2(nb)), **pdl_kwargs(pdl))
    return out


@triton.jit
def _mass_above(row_ptr, V, m, inv_t, tau, BLOCK: tl.constexpr):
    total = 0.0
    for v0 in range(0, V, BLOCK):
        offs = v0 + tl.arange(0, BLOCK)
        z = tl.load(row_ptr + offs, mask=offs < V, other=float("-inf")) * inv_t - m
        total += tl.sum(tl.where(z >= tau, tl.exp(z), 0.0), axis=0)
    return total


@triton.jit
def _sample_kernel(logits_ptr, out_ptr, seed_ptr, V, s_row, inv_t, top_p,
                   STEPS: tl.constexpr, FLOOR: tl.constexpr, BLOCK: tl.constexpr):
    row = tl.program_id(0)
    row_ptr = logits_ptr + row * s_row
    m = float("-inf")
    for v0 in range(0, V, BLOCK):
        offs = v0 + tl.arange(0, BLOCK)
        m = tl.maximum(m, tl.max(tl.load(row_ptr + offs, mask=offs < V, other=float("-inf")) * inv_t, axis=0))
    z_all = _mass_above(row_ptr, V, m, inv_t, float("-inf"), BLOCK)
    lo = FLOOR
    hi = 0.0
    if top_p < 1.0:
        for _ in range(STEPS):  # largest tau whose kept mass is still >= top_p
            mid = 0.5 * (lo + hi)
            keep = _mass_above(row_ptr, V, m, inv_t, mid, BLOCK) >= top_p * z_all
            lo = tl.where(keep, mid, lo)
            hi = tl.where(keep, hi, mid)
    else:
        lo = float("-inf")
    seed = tl.load(seed_ptr)
    best = float("-inf")
    best_i = 0
    for v0 in range(0, V, BLOCK):
        offs = v0 + tl.arange(0, BLOCK)
        z = tl.load(row_ptr + offs, mask=offs < V, other=float("-inf")) * inv_t - m
        u = tl.rand(seed, row * V + offs)
        g = -tl.log(-tl.log(tl.maximum(u, 1e-20)))
        score = tl.where((z >= lo) & (offs < V), z + g, float("-inf"))
        bm = tl.max(score, axis=0)
        bi = tl.min(tl.where(score == bm, offs, 2147483647), axis=0)
        take = bm > best
        best_i = tl.where(take, bi, best_i)
        best = tl.where(take, bm, best)
    tl.store(out_ptr + row, best_i.to(out_ptr.dtype.element_ty))


def sample(logits: Any, out: Any, seed: Any, temperature: float, top_p: float) -> Any:
    """logits: float32 [B, V]; out: int [B]; seed: int64 [1] on the device (advance it between steps)."""
    B, V = logits.shape
    if not temperature > 0:
        raise InputError(f"--temperature: must be > 0 (use --greedy for argmax), got {temperature}")
    if not 0 < top_p <= 1:
        raise InputError(f"--top-p: must be in (0, 1], got {top_p}")
    if logits.stride(1) != 1 or out.shape != (B,):
        raise InputError(f"sample: logits [B, V] row-contiguous and out [{B}], got {tuple(out.shape)}")
    _sample_kernel[(B,)](logits, out, seed, V, logits.stride(0), 1.0 / temperature, top_p,
                         STEPS=_SEARCH_STEPS, FLOOR=_SEARCH_FLOOR, BLOCK=min(4096, triton.next_power_of_2(V)),
                         num_warps=8)
    return out
