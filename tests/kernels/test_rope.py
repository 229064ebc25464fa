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
