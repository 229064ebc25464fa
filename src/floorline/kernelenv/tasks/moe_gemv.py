"""MoE expert GEMV at decode: each token multiplies by the k experts its router chose.

x [T, K] bf16; w [E, N, K] bf16; ids [T, top_k] int32. y [T, top_k, N] = x[t] @ w[ids[t, j]]^T, bf16.
"""

import torch
from torch import nn


class Model(nn.Module):
    def forward(self, x: torch.Tensor, w: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        we = w[ids.long()].double()  # [T, k, N, K]
        return torch.einsum("tk,tjnk->tjn", x.double(), we).to(x.dtype)


class Baseline(nn.Module):
    """Eager PyTorch: gather the chosen experts' weights, then a batched matmul."""

    def forward(self, x, w, ids):
        we = w[ids.long()]  # [T, k, N, K]
        return torch.einsum("tk,tjnk->tjn", x, we)


def get_inputs(tokens: int = 4, experts: int = 64, n: int = 768, k: int = 2048, top_k: int = 8):
    ids = torch.stack([torch.randperm(experts)[:top_k] for _ in range(tokens)]).to(torch.int32)
    return [torch.randn(tokens, k, dtype=torch.bfloat16), torch.randn(experts, n, k, dtype=torch.bfloat16) / k**0.5,
            ids]


def get_init_inputs():
    return []


def floor_bytes(inputs, outputs):
    """Each distinct chosen expert's weights are read once; plus x, ids and y."""
    x, w, ids = inputs
    distinct = int(torch.unique(ids).numel())
    return float(distinct * w[0].numel() * w.element_size() + x.numel() * x.element_size()
                 + ids.numel() * ids.element_size() + sum(o.numel() * o.element_size() for o in outputs))


METADATA = {
    "op": "moe_gemv",
    "tolerance": {"atol": 0.02, "rtol": 0.02},
    "heldout_shapes": [{"tokens": 1, "experts": 16, "n": 100, "k": 384, "top_k": 4},
                       {"tokens": 3, "experts": 10, "n": 65, "k": 200, "top_k": 2}],
    "cpu_shape": {"tokens": 2, "experts": 6, "n": 24, "k": 32, "top_k": 2},
    "cpu_heldout_shapes": [{"tokens": 1, "experts": 5, "n": 17, "k": 20, "top_k": 3}],
    "forbidden_ops": ["aten::mm", "aten::addmm", "aten::matmul", "aten::linear", "aten::bmm", "aten::mv",
                      "aten::baddbmm", "aten::_scaled_mm", "aten::dot", "aten::einsum", "aten::_grouped_mm"],
    # ordering the (token, expert) slots by expert is scheduling, not the GEMV's arithmetic
    "allowed_ops": ["sort", "argsort"],
    "floor": "bytes",
}
