"""The batch-1 expert GEMV with GemvConfig.double_buffer (tile i+1 loaded before tile i's
multiply-adds) against float64: same math as the single-buffered loop, on K slices whose last tile is
partial and whose tile count is odd or one, NaN-poisoned outputs and NaN unselected experts."""

from __future__ import annotations

import pytest
import torch

from floorline.kernels.gemv import GemvConfig
from floorline.kernels.moe_gemv import moe_gemv_b1
from tests.kernels.test_fused_b1 import EPS, TOL, err, real, rms, setup


@pytest.mark.parametrize("k,E,H,inter,wdtype,bk_gu,bk_dn,split", [
    (8, 128, 96, 40, "bf16", 32, 16, 1),    # 3 tiles of K for gate-up, 3 for down
    (2, 6, 130, 33, "fp8", 16, 16, 2),      # partial last tile; down split in 2 slices of 2 tiles + 1
    (3, 7, 70, 24, "bf16", 64, 16, 3),      # 2 tiles, the second partial; down slices of one tile each
])
@pytest.mark.parametrize("evict_first", [False, True])  # a load hint: same results
def test_moe_b1_double_buffer(device, k, E, H, inter, wdtype, bk_gu, bk_dn, split, evict_first):
    x, gain, gu, gus, dn, dns, ids, wts = setup(k, E, H, inter, wdtype, 7 * k + E)
    d = device
    act = torch.full((k, inter), float("nan"), device=d)
    moe_gemv_b1(x.to(d), gu.to(d), ids.to(d), act, scale=None if gus is None else gus.to(d), swiglu=True,
                norm=(gain.to(d), EPS), cfg=GemvConfig(block_n=16, block_k=bk_gu, double_buffer=True, evict_first=evict_first))
    h = rms(x, gain)[0]
    gw, uw = real(gu, gus)[ids.long(), :inter], real(gu, gus)[ids.long(), inter:]
    gate, up = gw @ h, uw @ h
    assert err(act, gate / (1 + torch.exp(-gate)) * up) < TOL
    res0 = torch.randn(1, H)
    res = res0.clone().to(d)
    moe_gemv_b1(act, dn.to(d), ids.to(d), res, scale=None if dns is None else dns.to(d), slot_weights=wts.to(d),
                accumulate=True, cfg=GemvConfig(block_n=16, block_k=bk_dn, split_k=split, double_buffer=True,
                                                  evict_first=evict_first))
    rows = torch.einsum("knh,kh->kn", real(dn, dns)[ids.long()], act.double().cpu()) * wts.double()[:, None]
    assert err(res, res0.double() + rows.sum(0, keepdim=True)) < TOL
