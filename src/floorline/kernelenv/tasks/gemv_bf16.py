"""Decode GEMV in bf16: y = x @ W^T for a handful of tokens; W [N, K] is read once from HBM."""

import torch
from torch import nn


class Model(nn.Module):
    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        return (x.double() @ w.double().T).to(x.dtype)


class Baseline(nn.Module):
    """cuBLAS through torch: x @ W^T in bf16."""

    def forward(self, x, w):
        return x @ w.T


def get_inputs(tokens: int = 1, n: int = 4096, k: int = 4096):
    return [torch.randn(tokens, k, dtype=torch.bfloat16), torch.randn(n, k, dtype=torch.bfloat16) / k**0.5]


def get_init_inputs():
    return []


METADATA = {
    "op": "gemv_bf16",
    "tolerance": {"atol": 0.02, "rtol": 0.02},
    "heldout_shapes": [{"tokens": 4, "n": 1000, "k": 2880}, {"tokens": 1, "n": 129, "k": 768}],
    "cpu_shape": {"tokens": 1, "n": 48, "k": 64},
    "cpu_heldout_shapes": [{"tokens": 3, "n": 33, "k": 40}],
    "forbidden_ops": ["aten::mm", "aten::addmm", "aten::matmul", "aten::linear", "aten::bmm", "aten::mv",
                      "aten::baddbmm", "aten::_scaled_mm", "aten::dot", "aten::einsum"],
    "floor": "bytes",
}
