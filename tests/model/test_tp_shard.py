"""Tensor-parallel sharding at load (model/weights.shard): attention heads and each expert's
intermediate dimension split over ranks, so the per-rank partial outputs sum to the full layer's
(what one all-reduce after attention and one after the MLP would add)."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from floorline.errors import InputError
from floorline.model.config import builtin
from floorline.model.reference import Cache, attention, mlp
from floorline.model.weights import random_weights, shard


@pytest.mark.parametrize("dtype", ["float64", "fp8"])
def test_partial_outputs_sum_to_the_full_layer(dtype):
    cfg = dataclasses.replace(builtin("small-moe"), num_key_value_heads=4)  # 8 q heads, 4 kv heads
    w = random_weights(cfg, dtype=dtype, seed=3)
    size = 2
    parts = [shard(w, r, size) for r in range(size)]
    local = dataclasses.replace(cfg, num_attention_heads=4, num_key_value_heads=2)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(5, cfg.hidden_size, generator=g, dtype=torch.float64)
    pos = torch.arange(5)
    for i in (0, 1):  # a dense layer (sparse step 2) and an MoE layer
        full_a = attention(cfg, w.layers[i], 0, x, pos, Cache())  # a fresh one-layer cache each
        sum_a = sum(attention(local, p.layers[i], 0, x, pos, Cache()) for p in parts)
        assert float((sum_a - full_a).norm() / full_a.norm()) < 1e-12
        full_m = mlp(cfg, w.layers[i], x)
        sum_m = sum(mlp(cfg, p.layers[i], x) for p in parts)
        assert float((sum_m - full_m).norm() / full_m.norm()) < 1e-12


def test_shard_rejects_uneven_heads():
    w = random_weights(builtin("tiny-moe"), dtype="float64", seed=1)  # 4 q heads, 2 kv heads
    with pytest.raises(InputError, match="--tp"):
        shard(w, 0, 3)
