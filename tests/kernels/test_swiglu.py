"""swiglu vs float64 silu(gate) * up, odd widths, poisoned output."""

from __future__ import annotations

import pytest
import torch

from floorline.kernels.swiglu import swiglu


@pytest.mark.parametrize("M,inter", [(1, 40), (7, 768), (3, 1537)])
def test_swiglu(device, M, inter):
    g = torch.Generator().manual_seed(M + inter)
    x = torch.randn(M, 2 * inter, generator=g) * 3
    out = torch.full((M, inter), float("nan"), device=device)
    swiglu(x.to(device), out)
    xd = x.double()
    want = torch.nn.functional.silu(xd[:, :inter]) * xd[:, inter:]
    assert float((out.double().cpu() - want).norm() / want.norm()) < 1e-6
