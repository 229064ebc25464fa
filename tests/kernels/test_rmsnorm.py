"""add_rmsnorm vs float64: residual add of J deltas, norm, gain; odd widths, poisoned outputs."""

from __future__ import annotations

import pytest
import torch

from floorline.errors import InputError
from floorline.kernels.rmsnorm import add_rmsnorm

TOL = {torch.float32: 2e-6, torch.bfloat16: 8e-3}  # output rel-L2 per output dtype


def rel(a, b):
    return float((a.double().cpu() - b).norm() / b.norm())


@pytest.mark.parametrize("B,N,J", [(1, 96, 0), (3, 173, 1), (5, 2048, 8), (2, 4097, 2)])
@pytest.mark.parametrize("out_dtype", [torch.float32, torch.bfloat16])
def test_add_rmsnorm(device, B, N, J, out_dtype):
    g = torch.Generator().manual_seed(B * N + J)
    res = torch.randn(B, N, generator=g) * 3
    delta = torch.randn(B, J, N, generator=g) if J else None
    gain = 1 + 0.1 * torch.randn(N, generator=g)
    want_res = res.double() + (delta.double().sum(1) if J else 0)
    want = want_res * torch.rsqrt(want_res.pow(2).mean(-1, keepdim=True) + 1e-6) * gain.double()
    r = res.to(device)
    out = torch.full((B, N), float("nan"), dtype=out_dtype, device=device)
    add_rmsnorm(r, gain.to(device), 1e-6, out, None if delta is None else delta.to(device))
    assert rel(r, want_res) < 1e-6
    assert rel(out, want) < TOL[out_dtype]


def test_add_rmsnorm_rejects_bad_shapes():
    with pytest.raises(InputError, match="gain"):
        add_rmsnorm(torch.zeros(2, 8), torch.ones(7), 1e-6, torch.empty(2, 8))
