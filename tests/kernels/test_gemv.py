"""gemv vs float64 x @ W^T: bf16 and FP8 (per-channel scales) weights, batch 1 and the tensor-core
path (batch 2..64), odd N and K, poisoned output."""

from __future__ import annotations

import pytest
import torch

from floorline.errors import InputError
from floorline.kernels.gemv import GemvConfig, gemv
from floorline.model.weights import quantize_fp8

# rel-L2 against float64 on the same (already-rounded) weights: only accumulation error remains.
TOL = {1: 2e-6, "dot": 2e-5}


@pytest.mark.parametrize("B,N,K", [(1, 37, 96), (1, 300, 1000), (3, 129, 257), (16, 64, 64), (64, 33, 130)])
@pytest.mark.parametrize("wdtype", ["bf16", "fp8"])
def test_gemv(device, B, N, K, wdtype):
    g = torch.Generator().manual_seed(B * N + K)
    x = torch.randn(B, K, generator=g)
    w = (torch.randn(N, K, generator=g) / K**0.5).to(torch.bfloat16)
    scale = None
    if wdtype == "fp8":
        q = quantize_fp8(w)
        w, scale = q.w, q.scale
    real = w.double() * (scale.double()[:, None] if scale is not None else 1)
    want = x.double() @ real.T
    out = torch.full((B, N), float("nan"), device=device)
    gemv(x.to(device), w.to(device), out, None if scale is None else scale.to(device),
         GemvConfig(block_n=16, block_k=64))
    err = float((out.double().cpu() - want).norm() / want.norm())
    assert err < TOL[1 if B == 1 else "dot"]


def test_gemv_rejects_mismatched_k():
    with pytest.raises(InputError, match="gemv"):
        gemv(torch.zeros(1, 8), torch.zeros(4, 9, dtype=torch.bfloat16), torch.empty(1, 4))


@pytest.mark.parametrize("B,split", [(1, 3), (5, 2)])
def test_gemv_split_k_partials_sum_to_the_product(device, B, split):
    N, K = 45, 700
    g = torch.Generator().manual_seed(split)
    x = torch.randn(B, K, generator=g)
    w = (torch.randn(N, K, generator=g) / K**0.5).to(torch.bfloat16)
    out = torch.full((B, split, N), float("nan"), device=device)
    gemv(x.to(device), w.to(device), out, None, GemvConfig(block_n=16, block_k=64, split_k=split))
    want = x.double() @ w.double().T
    err = float((out.double().sum(1).cpu() - want).norm() / want.norm())
    assert err < TOL[1 if B == 1 else "dot"]


@pytest.mark.parametrize("N,K,split,accumulate", [(37, 96, 1, False), (45, 700, 2, True), (300, 1000, 1, True)])
def test_gemv_preload_one_shot(device, N, K, split, accumulate):
    """GemvConfig.preload (the weight tile loaded first, before the PDL wait on a GPU): batch 1 where each
    program's K slice is one tile, plain and accumulating into a float32 residual, against float64."""
    g = torch.Generator().manual_seed(N + K)
    x = torch.randn(1, K, generator=g)
    w = (torch.randn(N, K, generator=g) / K**0.5).to(torch.bfloat16)
    bk = 1 << (-(-K // split) - 1).bit_length()  # one tile per split
    cfg = GemvConfig(block_n=8, block_k=bk, split_k=split, preload=True)
    base = torch.randn(1, N, generator=g)
    out = base.clone().to(device) if accumulate else torch.full((1, N), float("nan"), device=device)
    gemv(x.to(device), w.to(device), out, None, cfg, accumulate=accumulate)
    want = x.double() @ w.double().T + (base.double() if accumulate else 0)
    assert float((out.double().cpu() - want).norm() / want.norm()) < TOL[1]
