"""SwiGLU activation: silu(gate) * up on a fused [T, 2*I] gate_up projection output, in float32."""

import torch
from torch import nn


class Model(nn.Module):
    def forward(self, gate_up: torch.Tensor) -> torch.Tensor:
        g, u = gate_up.double().chunk(2, dim=-1)
        return (g * torch.sigmoid(g) * u).to(gate_up.dtype)


class Baseline(nn.Module):
    """Eager PyTorch: torch.nn.functional.silu(gate) * up."""

    def forward(self, gate_up):
        g, u = gate_up.chunk(2, dim=-1)
        return torch.nn.functional.silu(g) * u


def get_inputs(tokens: int = 8, inter: int = 8192):
    return [2 * torch.randn(tokens, 2 * inter, dtype=torch.float32)]


def get_init_inputs():
    return []


METADATA = {
    "op": "silu_mul",
    # float32 in and out: a candidate that computes in bf16 misses this by ~100x (precision check)
    "tolerance": {"atol": 1e-5, "rtol": 1e-5},
    "heldout_shapes": [{"tokens": 1, "inter": 768}, {"tokens": 5, "inter": 1000}],
    "cpu_shape": {"tokens": 3, "inter": 64},
    "cpu_heldout_shapes": [{"tokens": 2, "inter": 50}],
    "forbidden_ops": ["aten::silu", "aten::silu_", "aten::sigmoid", "aten::glu"],
    "floor": "bytes",
}
