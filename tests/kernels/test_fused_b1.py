"""The decoder's fused batch-1 kernel modes vs float64: GEMV with RMSNorm folded in (raw residual in,
rmsnorm(x) * gain @ W^T out), GEMV accumulating into the residual with atomics (split-K slices
included), the batch-1 expert GEMV with the same two modes (gate-up + SwiGLU normed; down weighted
and summed over the k experts into the residual), and top-k over logits from elsewhere. Outputs are
NaN-poisoned; unselected experts are NaN too (reading one would show)."""

from __future__ import annotations

import pytest
import torch

from floorline.errors import InputError
from floorline.kernels.gemv import GemvConfig, gemv
from floorline.kernels.moe_gemv import moe_gemv_b1
from floorline.kernels.router_topk import topk
from floorline.model.weights import quantize_fp8

TOL = 2e-6
EPS = 1e-6


def rms(x, gain):
    x = x.double()
    return x / torch.sqrt((x * x).mean(-1, keepdim=True) + EPS) * gain.double()


def err(got, want):
    return float((got.double().cpu() - want).norm() / want.norm())


@pytest.mark.parametrize("one_shot", [False, True])  # True: the whole K in one tile (no K loop)
@pytest.mark.parametrize("N,K,wdtype", [(37, 96, "bf16"), (300, 1000, "fp8")])
def test_gemv_norm_folded(device, N, K, wdtype, one_shot):
    g = torch.Generator().manual_seed(N + K)
    x = 3 * torch.randn(1, K, generator=g)  # a residual is not unit-scale
    gain = (1 + 0.3 * torch.randn(K, generator=g)).to(torch.bfloat16)
    w = (torch.randn(N, K, generator=g) / K**0.5).to(torch.bfloat16)
    scale = None
    if wdtype == "fp8":
        q = quantize_fp8(w)
        w, scale = q.w, q.scale
    want = rms(x, gain) @ (w.double() * (scale.double()[:, None] if scale is not None else 1)).T
    out = torch.full((1, N), float("nan"), device=device)
    bk = 1 << (K - 1).bit_length() if one_shot else 64
    gemv(x.to(device), w.to(device), out, None if scale is None else scale.to(device), GemvConfig(16, bk),
         norm=(gain.to(device), EPS))
    assert err(out, want) < TOL


@pytest.mark.parametrize("split", [1, 3])
def test_gemv_accumulates_into_residual(device, split):
    N, K = 45, 700
    g = torch.Generator().manual_seed(split)
    x = torch.randn(1, K, generator=g)
    res = torch.randn(1, N, generator=g)
    w = (torch.randn(N, K, generator=g) / K**0.5).to(torch.bfloat16)
    want = res.double() + x.double() @ w.double().T
    out = res.clone().to(device)
    gemv(x.to(device), w.to(device), out, None, GemvConfig(block_n=16, block_k=64, split_k=split), accumulate=True)
    assert err(out, want) < TOL


def setup(k, E, H, inter, wdtype, seed):
    g = torch.Generator().manual_seed(seed)
    x = 2 * torch.randn(1, H, generator=g)
    gain = (1 + 0.3 * torch.randn(H, generator=g)).to(torch.bfloat16)
    gu = (torch.randn(E, 2 * inter, H, generator=g) / H**0.5).to(torch.bfloat16)
    dn = (torch.randn(E, H, inter, generator=g) / inter**0.5).to(torch.bfloat16)
    ids = torch.randperm(E, generator=g)[:k].to(torch.int32)
    wts = torch.rand(k, generator=g)
    gus = dns = None
    if wdtype == "fp8":
        a, b = quantize_fp8(gu), quantize_fp8(dn)
        gu, gus, dn, dns = a.w, a.scale, b.w, b.scale
    for e in sorted(set(range(E)) - set(ids.tolist())):
        gu[e] = float("nan")
        dn[e] = float("nan")
    return x, gain, gu, gus, dn, dns, ids, wts


def real(w, s):
    return w.double() * (s.double()[..., None] if s is not None else 1)


@pytest.mark.parametrize("one_shot", [False, True])  # True: the whole K slice in one tile
@pytest.mark.parametrize("k,E,H,inter,wdtype,split", [(8, 128, 96, 40, "bf16", 1), (2, 6, 130, 33, "fp8", 2)])
def test_moe_b1_norm_swiglu_then_weighted_sum_into_residual(device, k, E, H, inter, wdtype, split, one_shot):
    x, gain, gu, gus, dn, dns, ids, wts = setup(k, E, H, inter, wdtype, k + E)
    d = device
    act = torch.full((k, inter), float("nan"), device=d)
    moe_gemv_b1(x.to(d), gu.to(d), ids.to(d), act, scale=None if gus is None else gus.to(d), swiglu=True,
                norm=(gain.to(d), EPS), cfg=GemvConfig(block_n=16, block_k=256 if one_shot else 32))
    h = rms(x, gain)[0]
    gw, uw = real(gu, gus)[ids.long(), :inter], real(gu, gus)[ids.long(), inter:]
    gate, up = gw @ h, uw @ h  # [k, inter]
    want_act = gate / (1 + torch.exp(-gate)) * up
    assert err(act, want_act) < TOL
    res0 = torch.randn(1, H)
    res = res0.clone().to(d)
    moe_gemv_b1(act, dn.to(d), ids.to(d), res, scale=None if dns is None else dns.to(d), slot_weights=wts.to(d),
                accumulate=True, cfg=GemvConfig(block_n=16, block_k=64 if one_shot else 16, split_k=split))
    rows = torch.einsum("knh,kh->kn", real(dn, dns)[ids.long()], act.double().cpu()) * wts.double()[:, None]
    want = res0.double() + rows.sum(0, keepdim=True)
    assert err(res, want) < TOL


def test_moe_b1_rejects_split_without_accumulate():
    x, gain, gu, gus, dn, dns, ids, wts = setup(2, 4, 32, 16, "bf16", 0)
    with pytest.raises(InputError, match="split_k"):
        moe_gemv_b1(torch.zeros(2, 16), dn, ids, torch.empty(4, 32), cfg=GemvConfig(split_k=2))


def test_topk_over_given_logits(device):
    g = torch.Generator().manual_seed(5)
    E, k = 100, 8
    logits = torch.randn(1, E, generator=g)
    ids = torch.full((1, k), -1, dtype=torch.int32, device=device)
    wts = torch.full((1, k), float("nan"), device=device)
    topk(logits.to(device), k, True, ids, wts)
    p = torch.softmax(logits.double(), -1)
    top = torch.topk(p, k)
    assert ids.cpu().tolist() == top.indices.int().tolist()
    assert err(wts, top.values / top.values.sum()) < 1e-6


@pytest.mark.parametrize("E,k,renorm,bk", [(100, 8, True, 64), (128, 8, False, 256), (6, 2, True, 64)])
def test_router_b1_one_launch(device, E, k, renorm, bk):
    """Normed router GEMV over several programs, top-k by the last one; twice (the ticket counter
    must come back to zero), each time on fresh poisoned outputs."""
    from floorline.kernels.router_topk import router_b1

    H = 200
    g = torch.Generator().manual_seed(E + k)
    w = (torch.randn(E, H, generator=g) / H**0.5).to(torch.bfloat16)
    gain = (1 + 0.3 * torch.randn(H, generator=g)).to(torch.bfloat16)
    counter = torch.zeros(1, dtype=torch.int32, device=device)
    for _ in range(2):
        x = 3 * torch.randn(1, H, generator=g)
        ids = torch.full((1, k), -1, dtype=torch.int32, device=device)
        wts = torch.full((1, k), float("nan"), device=device)
        logits = torch.full((1, E), float("nan"), device=device)
        router_b1(x.to(device), w.to(device), k, renorm, ids, wts, logits, counter, norm=(gain.to(device), EPS),
                  gemv_cfg=GemvConfig(block_n=4, block_k=bk))  # 256 >= H: one tile
        want_logits = rms(x, gain) @ w.double().T
        p = torch.softmax(want_logits, -1)
        top = torch.topk(p, k)
        assert ids.cpu().tolist() == top.indices.int().tolist()
        want_w = top.values / top.values.sum() if renorm else top.values
        assert err(wts, want_w) < 1e-5
        assert int(counter.item()) == 0
