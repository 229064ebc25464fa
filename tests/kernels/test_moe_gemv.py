"""moe_gemv vs float64: the fused gate-up + SwiGLU and the weighted down projection, per-slot
(batch 1) and grouped (batch > 1, tokens sharing experts), bf16 and FP8; and it must read only the
selected experts (poisoned unselected experts would show up as NaN)."""

from __future__ import annotations

import pytest
import torch

from floorline.kernels.gemv import GemvConfig
from floorline.kernels.moe_gemv import moe_gemv
from floorline.model.weights import quantize_fp8

TOL = {1: 2e-6, "dot": 2e-5}


def setup(B, k, E, H, inter, wdtype, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(B, H, generator=g)
    gu = (torch.randn(E, 2 * inter, H, generator=g) / H**0.5).to(torch.bfloat16)
    dn = (torch.randn(E, H, inter, generator=g) / inter**0.5).to(torch.bfloat16)
    ids = torch.stack([torch.randperm(E, generator=g)[:k] for _ in range(B)]).to(torch.int32)
    wts = torch.rand(B, k, generator=g)
    gus = dns = None
    if wdtype == "fp8":
        a, b = quantize_fp8(gu), quantize_fp8(dn)
        gu, gus, dn, dns = a.w, a.scale, b.w, b.scale
    # poison every expert nobody selected: reading one would put NaN in the output
    unused = sorted(set(range(E)) - set(ids.flatten().tolist()))
    for e in unused:
        gu[e] = float("nan")
        dn[e] = float("nan")
    return x, gu, gus, dn, dns, ids, wts


def real(w, s):
    return w.double() * (s.double()[..., None] if s is not None else 1)


@pytest.mark.parametrize("B,k,E,H,inter", [(1, 8, 128, 96, 40), (1, 2, 6, 130, 33), (5, 4, 9, 64, 48), (33, 8, 16, 80, 24)])
@pytest.mark.parametrize("wdtype", ["bf16", "fp8"])
def test_moe_gemv_matches_float64(device, B, k, E, H, inter, wdtype):
    x, gu, gus, dn, dns, ids, wts = setup(B, k, E, H, inter, wdtype, seed=B * 1000 + E + H)
    slot_e = ids.flatten().to(device)
    order = torch.argsort(slot_e, stable=True).to(torch.int32) if B > 1 else None
    cfg = GemvConfig(block_n=16, block_k=32)
    act = torch.full((B * k, inter), float("nan"), device=device)
    moe_gemv(x.to(device), gu.to(device), slot_e, act, tokens=B, scale=None if gus is None else gus.to(device),
             swiglu=True, order=order, cfg=cfg)
    out = torch.full((B * k, H), float("nan"), device=device)
    moe_gemv(act, dn.to(device), slot_e, out, tokens=B, scale=None if dns is None else dns.to(device),
             slot_weights=wts.flatten().to(device), order=order, cfg=cfg)
    # float64 spec, one (token, expert) pair at a time
    want_act = torch.empty(B * k, inter, dtype=torch.float64)
    want = torch.empty(B * k, H, dtype=torch.float64)
    for t in range(B):
        for j in range(k):
            e, s = int(ids[t, j]), t * k + j
            w_gu, w_dn = real(gu[e], None if gus is None else gus[e]), real(dn[e], None if dns is None else dns[e])
            h = torch.nn.functional.silu(w_gu[:inter] @ x[t].double()) * (w_gu[inter:] @ x[t].double())
            want_act[s] = h
            want[s] = wts[t, j].double() * (w_dn @ act[s].double().cpu())
    tol = TOL[1 if B == 1 else "dot"]
    assert float((act.double().cpu() - want_act).norm() / want_act.norm()) < tol
    assert float((out.double().cpu() - want).norm() / want.norm()) < tol


def test_dense_layer_as_one_expert(device):
    """A dense MLP (E = 1, k = 1) at batch 7 through the grouped path."""
    B, H, inter = 7, 72, 56
    g = torch.Generator().manual_seed(3)
    x = torch.randn(B, H, generator=g)
    gu = (torch.randn(1, 2 * inter, H, generator=g) / H**0.5).to(torch.bfloat16)
    slot_e = torch.zeros(B, dtype=torch.int32, device=device)
    act = torch.full((B, inter), float("nan"), device=device)
    moe_gemv(x.to(device), gu.to(device), slot_e, act, tokens=B, swiglu=True,
             order=torch.arange(B, dtype=torch.int32, device=device), cfg=GemvConfig(block_n=16, block_k=32))
    w = gu[0].double()
    want = torch.nn.functional.silu(x.double() @ w[:inter].T) * (x.double() @ w[inter:].T)
    assert float((act.double().cpu() - want).norm() / want.norm()) < TOL["dot"]


@pytest.mark.parametrize("B", [1, 6])
def test_moe_down_split_k(device, B):
    k, E, H, inter, split = 4, 8, 40, 200, 3
    x, gu, gus, dn, dns, ids, wts = setup(B, k, E, H, inter, "bf16", seed=50 + B)
    act = torch.randn(B * k, inter, generator=torch.Generator().manual_seed(1))
    slot_e = ids.flatten().to(device)
    order = torch.argsort(slot_e, stable=True).to(torch.int32) if B > 1 else None
    out = torch.full((B * k * split, H), float("nan"), device=device)
    moe_gemv(act.to(device), dn.to(device), slot_e, out, tokens=B, slot_weights=wts.flatten().to(device), order=order,
             cfg=GemvConfig(block_n=16, block_k=32, split_k=split))
    got = out.double().cpu().view(B * k, split, H).sum(1)
    want = torch.stack([wts.flatten()[s].double() * (dn[int(ids.flatten()[s])].double() @ act[s].double())
                        for s in range(B * k)])
    assert float((got - want).norm() / want.norm()) < TOL[1 if B == 1 else "dot"]
