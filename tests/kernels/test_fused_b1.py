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


# one_shot: the whole K slice in one tile; preload (GemvConfig.preload, one-shot only): the expert's
# weight tile loaded first, before the PDL wait on a GPU
@pytest.mark.parametrize("one_shot,preload", [(False, False), (True, False), (True, True)])
@pytest.mark.parametrize("k,E,H,inter,wdtype,split", [(8, 128, 96, 40, "bf16", 1), (2, 6, 130, 33, "fp8", 2)])
def test_moe_b1_norm_swiglu_then_weighted_sum_into_residual(device, k, E, H, inter, wdtype, split, one_shot, preload):
    x, gain, gu, gus, dn, dns, ids, wts = setup(k, E, H, inter, wdtype, k + E)
    d = device
    act = torch.full((k, inter), float("nan"), device=d)
    moe_gemv_b1(x.to(d), gu.to(d), ids.to(d), act, scale=None if gus is None else gus.to(d), swiglu=True,
                norm=(gain.to(d), EPS), cfg=GemvConfig(block_n=16, block_k=256 if one_shot else 32, preload=preload))
    h = rms(x, gain)[0]
    gw, uw = real(gu, gus)[ids.long(), :inter], real(gu, gus)[ids.long(), inter:]
    gate, up = gw @ h, uw @ h  # [k, inter]
    want_act = gate / (1 + torch.exp(-gate)) * up
    assert err(act, want_act) < TOL
    res0 = torch.randn(1, H)
    res = res0.clone().to(d)
    moe_gemv_b1(act, dn.to(d), ids.to(d), res, scale=None if dns is None else dns.to(d), slot_weights=wts.to(d),
                accumulate=True, cfg=GemvConfig(block_n=16, block_k=64 if one_shot else 16, split_k=split, preload=preload))
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


# split: partial logits per K slice, summed by the last program. H = 200 is no multiple of any K
# slice, so the last slice is partial; at (100, split 3, bk 64) and (6, split 3, bk 128) the slices
# are 128 wide and the third starts past H (empty); bk 256 at split 1, 128 at split 2 and 64 at
# split 4 are one tile per slice (ONE_SHOT).
@pytest.mark.parametrize("E,k,renorm,bn,bk,split", [
    (100, 8, True, 4, 64, 1), (128, 8, False, 4, 256, 1), (6, 2, True, 4, 64, 1),
    (100, 8, True, 4, 64, 2), (100, 8, False, 2, 64, 3), (100, 8, True, 4, 128, 2), (128, 8, False, 4, 64, 4),
    (6, 2, True, 4, 64, 4), (6, 2, False, 4, 128, 3), (6, 1, True, 2, 32, 2),
])
def test_router_b1_one_launch(device, E, k, renorm, bn, bk, split):
    """Normed router GEMV over several programs, top-k by the last one; twice (the ticket counter
    must come back to zero), each time on fresh poisoned outputs and scratch."""
    check_router_b1(device, E, k, renorm, bn, bk, split, norm=True)


def test_router_b1_split_without_norm(device):  # the scratch's sum-of-squares column stays NaN, unread
    check_router_b1(device, 100, 8, True, 4, 64, 3, norm=False)


# GemvConfig.preload: the one-tile slices' weights loaded first (before the PDL wait on a GPU); split 1
# goes through kernels.gemv's body, split 2 and 4 through the router's split part
@pytest.mark.parametrize("E,bn,bk,split", [(128, 4, 256, 1), (100, 4, 128, 2), (6, 4, 64, 4)])
def test_router_b1_preload(device, E, bn, bk, split):
    check_router_b1(device, E, 8 if E > 8 else 2, True, bn, bk, split, norm=True, preload=True)


def check_router_b1(device, E, k, renorm, bn, bk, split, norm, preload=False):
    from floorline.kernels.router_topk import router_b1

    H = 200
    g = torch.Generator().manual_seed(E + k + split - 1)
    w = (torch.randn(E, H, generator=g) / H**0.5).to(torch.bfloat16)
    gain = (1 + 0.3 * torch.randn(H, generator=g)).to(torch.bfloat16)
    counter = torch.zeros(1, dtype=torch.int32, device=device)
    for _ in range(2):
        x = 3 * torch.randn(1, H, generator=g)
        ids = torch.full((1, k), -1, dtype=torch.int32, device=device)
        wts = torch.full((1, k), float("nan"), device=device)
        logits = torch.full((1, E) if split == 1 else (split, E + 1), float("nan"), device=device)
        router_b1(x.to(device), w.to(device), k, renorm, ids, wts, logits, counter,
                  norm=(gain.to(device), EPS) if norm else None,
                  gemv_cfg=GemvConfig(block_n=bn, block_k=bk, split_k=split, preload=preload))
        want_logits = (rms(x, gain) if norm else x.double()) @ w.double().T
        p = torch.softmax(want_logits, -1)
        top = torch.topk(p, k)
        assert ids.cpu().tolist() == top.indices.int().tolist()
        want_w = top.values / top.values.sum() if renorm else top.values
        assert err(wts, want_w) < 1e-5
        assert int(counter.item()) == 0


@pytest.mark.parametrize("split", [1, 3])
def test_router_b1_ties_go_to_the_lower_index(device, split):
    """Two pairs of equal rows give exactly equal logits at the top: each pair in index order."""
    from floorline.kernels.router_topk import router_b1

    E, H, k = 100, 200, 4
    g = torch.Generator().manual_seed(11)
    x = 3 * torch.randn(1, H, generator=g)
    gain = (1 + 0.3 * torch.randn(H, generator=g)).to(torch.bfloat16)
    w = torch.randn(E, H, generator=g) / H**0.5
    w[[9, 4]] = 0.2 * torch.sign(x[0] * gain.float())
    w[[30, 17]] = 0.1 * torch.sign(x[0] * gain.float())
    w = w.to(torch.bfloat16)
    ids = torch.full((1, k), -1, dtype=torch.int32, device=device)
    wts = torch.full((1, k), float("nan"), device=device)
    logits = torch.full((1, E) if split == 1 else (split, E + 1), float("nan"), device=device)
    router_b1(x.to(device), w.to(device), k, True, ids, wts, logits, torch.zeros(1, dtype=torch.int32, device=device),
              norm=(gain.to(device), EPS), gemv_cfg=GemvConfig(block_n=4, block_k=64, split_k=split))
    assert ids.cpu().tolist() == [[4, 9, 17, 30]]
    p = torch.softmax(rms(x, gain) @ w.double().T, -1)[0, [4, 9, 17, 30]]
    assert err(wts, p / p.sum()) < 1e-5


@pytest.mark.parametrize("split,shape", [(2, (1, 100)), (2, (2, 100)), (1, (1, 101)), (3, (2, 101))])
def test_router_b1_rejects_wrong_scratch(split, shape):
    from floorline.kernels.router_topk import router_b1

    E, H, k = 100, 64, 8
    with pytest.raises(InputError, match=r"logits float32 \[" + ("1, 100" if split == 1 else f"{split}, 101")):
        router_b1(torch.zeros(1, H), torch.zeros(E, H, dtype=torch.bfloat16), k, True,
                  torch.empty(1, k, dtype=torch.int32), torch.empty(1, k), torch.empty(*shape),
                  torch.zeros(1, dtype=torch.int32), gemv_cfg=GemvConfig(block_n=4, block_k=64, split_k=split))
