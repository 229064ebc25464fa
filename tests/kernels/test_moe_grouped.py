"""moe_grouped vs float64: fused gate-up + SwiGLU and the weighted down projection with tokens grouped
by expert, bf16 and FP8; uneven loads (experts with 0 tokens, one expert with every token, more
tokens than one chunk); outputs NaN-poisoned first; unselected experts poisoned with NaN (reading
one would show)."""

from __future__ import annotations

import pytest
import torch

from floorline.errors import InputError
from floorline.kernels.moe_grouped import GroupedConfig, moe_grouped
from floorline.model.weights import quantize_fp8

# x is split into bf16 hi + lo (~16 mantissa bits); W is exact; fp32 accumulation.
TOL = {"bf16": 2e-5, "fp8": 2e-5}
SMALL = GroupedConfig(block_n=16, block_k=32, tokens=8)


def routes(kind, B, k, E, g):
    if kind == "random":  # the last expert is never chosen: an expert with 0 tokens
        return torch.stack([torch.randperm(E - 1, generator=g)[:k] for _ in range(B)])
    if kind == "skewed":  # expert 0 in every token (B tokens > one chunk), the rest from a few experts
        rest = [torch.randperm(min(E - 1, k + 2), generator=g)[: k - 1] + 1 for _ in range(B)]
        return torch.stack([torch.cat([torch.zeros(1, dtype=torch.long), r]) for r in rest])
    raise ValueError(kind)


def setup(B, k, E, H, inter, wdtype, kind, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(B, H, generator=g)
    gu = (torch.randn(E, 2 * inter, H, generator=g) / H**0.5).to(torch.bfloat16)
    dn = (torch.randn(E, H, inter, generator=g) / inter**0.5).to(torch.bfloat16)
    ids = routes(kind, B, k, E, g).to(torch.int32)
    wts = torch.rand(B, k, generator=g) + 0.1
    gus = dns = None
    if wdtype == "fp8":
        a, b = quantize_fp8(gu), quantize_fp8(dn)
        gu, gus, dn, dns = a.w, a.scale, b.w, b.scale
    unused = sorted(set(range(E)) - set(ids.flatten().tolist()))
    assert unused, "every case leaves some expert with 0 tokens"
    for e in unused:
        gu[e] = float("nan")
        dn[e] = float("nan")
    return x, gu, gus, dn, dns, ids, wts


def real(w, s):
    return w.double() * (s.double()[..., None] if s is not None else 1)


def order(slot_e):
    return torch.argsort(slot_e, stable=True).to(torch.int32)


def rel(got, want):
    return float((got.double().cpu() - want).norm() / want.norm())


@pytest.mark.parametrize("B,k,E,H,inter,kind", [
    (2, 2, 5, 40, 24, "random"),
    (7, 3, 11, 70, 19, "random"),
    (33, 8, 16, 80, 24, "random"),  # ~16 tokens per expert: several chunks
    (19, 4, 9, 48, 40, "skewed"),  # expert 0 has all 19 tokens
])
@pytest.mark.parametrize("wdtype", ["bf16", "fp8"])
def test_moe_grouped_matches_float64(device, B, k, E, H, inter, kind, wdtype):
    x, gu, gus, dn, dns, ids, wts = setup(B, k, E, H, inter, wdtype, kind, seed=B * 100 + E + H)
    slot_e = ids.flatten().to(device)
    act = torch.full((B * k, inter), float("nan"), device=device)
    moe_grouped(x.to(device), gu.to(device), slot_e, order(slot_e), act, scale=None if gus is None else gus.to(device),
                swiglu=True, cfg=SMALL)
    out = torch.full((B * k, H), float("nan"), device=device)
    moe_grouped(act, dn.to(device), slot_e, order(slot_e), out, scale=None if dns is None else dns.to(device),
                slot_weights=wts.flatten().to(device), cfg=SMALL)
    want_act = torch.empty(B * k, inter, dtype=torch.float64)
    want = torch.empty(B * k, H, dtype=torch.float64)
    for t in range(B):
        for j in range(k):
            e, s = int(ids[t, j]), t * k + j
            w_gu, w_dn = real(gu[e], None if gus is None else gus[e]), real(dn[e], None if dns is None else dns[e])
            want_act[s] = torch.nn.functional.silu(w_gu[:inter] @ x[t].double()) * (w_gu[inter:] @ x[t].double())
            want[s] = wts[t, j].double() * (w_dn @ act[s].double().cpu())
    assert rel(act, want_act) < TOL[wdtype]
    assert rel(out, want) < TOL[wdtype]


def test_dense_layer_as_one_expert(device):
    """A dense MLP (E = 1, k = 1): one expert with every token of a 37-token batch (5 chunks)."""
    B, H, inter = 37, 72, 56
    g = torch.Generator().manual_seed(3)
    x = torch.randn(B, H, generator=g)
    gu = (torch.randn(1, 2 * inter, H, generator=g) / H**0.5).to(torch.bfloat16)
    act = torch.full((B, inter), float("nan"), device=device)
    moe_grouped(x.to(device), gu.to(device), torch.zeros(B, dtype=torch.int32, device=device),
                torch.arange(B, dtype=torch.int32, device=device), act, swiglu=True,
                cfg=SMALL)
    w = gu[0].double()
    want = torch.nn.functional.silu(x.double() @ w[:inter].T) * (x.double() @ w[inter:].T)
    assert rel(act, want) < TOL["bf16"]


def test_down_split_k(device):
    B, k, E, H, inter, split = 6, 4, 8, 40, 200, 3
    x, gu, gus, dn, dns, ids, wts = setup(B, k, E, H, inter, "bf16", "random", seed=51)
    act = torch.randn(B * k, inter, generator=torch.Generator().manual_seed(1))
    out = torch.full((B * k * split, H), float("nan"), device=device)
    moe_grouped(act.to(device), dn.to(device), ids.flatten().to(device), order(ids.flatten().to(device)), out, slot_weights=wts.flatten().to(device),
                split_k=split, cfg=SMALL)
    got = out.double().cpu().view(B * k, split, H).sum(1)
    want = torch.stack([wts.flatten()[s].double() * (dn[int(ids.flatten()[s])].double() @ act[s].double())
                        for s in range(B * k)])
    assert rel(got, want) < TOL["bf16"]


def test_keeps_16_mantissa_bits(device):
    """A bf16-only x would be off by ~2e-3; hi + lo must stay near fp32 (guards the row split)."""
    B, k, E, H, inter = 3, 2, 4, 64, 32
    x, gu, _, dn, _, ids, _ = setup(B, k, E, H, inter, "bf16", "random", seed=9)
    act = torch.full((B * k, inter), float("nan"), device=device)
    moe_grouped(x.to(device), gu.to(device), ids.flatten().to(device), order(ids.flatten().to(device)), act, swiglu=True, cfg=SMALL)
    w = gu.double()
    want = torch.stack([torch.nn.functional.silu(w[int(ids[t, j]), :inter] @ x[t].double())
                        * (w[int(ids[t, j]), inter:] @ x[t].double()) for t in range(B) for j in range(k)])
    assert rel(act, want) < 1e-5


def test_bad_shapes_name_the_field(device):
    x = torch.randn(4, 32, device=device)
    w = torch.zeros(3, 16, 32, dtype=torch.bfloat16, device=device)
    e = torch.zeros(8, dtype=torch.int32, device=device)
    with pytest.raises(InputError, match="out must be"):
        moe_grouped(x, w, e, order(e), torch.empty(8, 16, device=device), swiglu=True)
    with pytest.raises(InputError, match="split_k"):
        moe_grouped(x, w, e, order(e), torch.empty(16, 8, device=device), swiglu=True, split_k=2)
