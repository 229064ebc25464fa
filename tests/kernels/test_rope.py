"""qk_norm_rope vs the float64 reference's norm + RoPE (default and YaRN), large positions included."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from floorline.kernels.rope import qk_norm_rope
from floorline.model.config import RopeScaling, builtin
from floorline.model.reference import apply_rope, rms_norm, rope_cos_sin, rope_inv_freq

TOL = 2e-6  # float32 outputs, rel-L2


@pytest.mark.parametrize("rope", ["default", "yarn"])
@pytest.mark.parametrize("T,hq,hk,d", [(1, 4, 2, 64), (3, 8, 1, 128), (5, 6, 3, 32)])
def test_qk_norm_rope(device, rope, T, hq, hk, d):
    cfg = dataclasses.replace(builtin("tiny-moe"), head_dim=d, num_attention_heads=hq, num_key_value_heads=hk,
                              rope_theta=1e6)
    if rope == "yarn":
        cfg = dataclasses.replace(cfg, rope_scaling=RopeScaling("yarn", 4.0, 32768))
    g = torch.Generator().manual_seed(T * 100 + d)
    qkv = torch.randn(T, (hq + 2 * hk) * d, generator=g) * 2
    pos = torch.randint(0, 131072, (T,), generator=g)
    pos[0] = 131071  # the far end of a 128K context
    qg, kg = 1 + 0.1 * torch.randn(d, generator=g), 1 + 0.1 * torch.randn(d, generator=g)
    inv_freq, scale = rope_inv_freq(cfg)
    outs = [torch.full((T, h, d), float("nan"), device=device) for h in (hq, hk, hk)]
    qk_norm_rope(qkv.to(device), pos.to(torch.int32).to(device), inv_freq.to(device), scale, qg.to(device),
                 kg.to(device), 1e-6, *outs, hq, hk)
    x = qkv.double()
    q = x[:, : hq * d].view(T, hq, d)
    k = x[:, hq * d : (hq + hk) * d].view(T, hk, d)
    v = x[:, (hq + hk) * d :].view(T, hk, d)
    cos, sin = rope_cos_sin(cfg, pos)
    want_q = apply_rope(rms_norm(q, qg.double(), 1e-6), cos, sin)
    want_k = apply_rope(rms_norm(k, kg.double(), 1e-6), cos, sin)
    for got, want in zip(outs, (want_q, want_k, v), strict=True):
        assert float((got.double().cpu() - want).norm() / want.norm()) < TOL


def test_qk_norm_rope_writes_the_paged_cache(device):
    """k and v land in sequence seq_ids[t]'s page at slot positions[t] (shuffled pages), nowhere else."""
    from floorline.kernels.kv_cache import allocate_kv_cache

    T, hq, hk, d, P = 5, 4, 2, 64, 16
    cfg = dataclasses.replace(builtin("tiny-moe"), head_dim=d, num_attention_heads=hq, num_key_value_heads=hk)
    g = torch.Generator().manual_seed(9)
    qkv = torch.randn(T, (hq + 2 * hk) * d, generator=g)
    pos = torch.tensor([0, 17, 33, 5, 40], dtype=torch.int32)
    seq = torch.tensor([0, 1, 1, 2, 0], dtype=torch.int32)
    pt = torch.randperm(12, generator=g).to(torch.int32).view(3, 4)
    cache = allocate_kv_cache(12, hk, P, d, "bf16", device)
    cache.k.fill_(float("nan"))
    cache.v.fill_(float("nan"))
    inv_freq, scale = rope_inv_freq(cfg)
    q = torch.full((T, hq, d), float("nan"), device=device)
    qk_norm_rope(qkv.to(device), pos.to(device), inv_freq.to(device), scale, None, None, 1e-6, q, None, None, hq, hk,
                 cache=cache, page_table=pt.to(device), seq_ids=seq.to(device))
    x = qkv.double()
    cos, sin = rope_cos_sin(cfg, pos.long())
    want_k = apply_rope(x[:, hq * d : (hq + hk) * d].view(T, hk, d), cos, sin)
    want_v = x[:, (hq + hk) * d :].view(T, hk, d)
    for t in range(T):
        page, slot = int(pt[seq[t], pos[t] // P]), int(pos[t] % P)
        for got, want in ((cache.k, want_k), (cache.v, want_v)):
            err = (got[page, :, slot].double().cpu() - want[t]).norm() / want[t].norm()
            assert err < 1e-2  # bf16 storage (the interpreter truncates)
    assert int(torch.isnan(cache.k.float()).any(dim=-1).logical_not().sum()) == T * hk  # nothing else written
