"""Decode GEMV with FP8 (e4m3) weights and one float32 scale per output row: y = (x @ W^T) * scale, bf16 out."""

import torch
from torch import nn


class Model(nn.Module):
    def forward(self, x: torch.Tensor, w: torch.Tensor, w_scale: torch.Tensor) -> torch.Tensor:
        return ((x.double() @ w.double().T) * w_scale.double()).to(x.dtype)


class Baseline(nn.Module):
    """Eager PyTorch: dequantise W to bf16, then cuBLAS (what a stack without an FP8 GEMV does)."""

    def forward(self, x, w, w_scale):
        return ((x @ w.to(x.dtype).T).float() * w_scale).to(x.dtype)


def get_inputs(tokens: int = 1, n: int = 4096, k: int = 4096):
    w = (torch.randn(n, k) * 64).clamp(-448, 448).to(torch.float8_e4m3fn)
    return [torch.randn(tokens, k, dtype=torch.bfloat16), w, torch.rand(n, dtype=torch.float32) / (64 * k**0.5)]


def get_init_inputs():
    return []


METADATA = {
    "op": "gemv_fp8",
    "tolerance": {"atol": 0.02, "rtol": 0.02},
    "heldout_shapes": [{"tokens": 4, "n": 1000, "k": 2880}, {"tokens": 1, "n": 129, "k": 768}],
    "cpu_shape": {"tokens": 1, "n": 48, "k": 64},
    "cpu_heldout_shapes": [{"tokens": 2, "n": 33, "k": 40}],
    "forbidden_ops": ["aten::mm", "aten::addmm", "aten::matmul", "aten::linear", "aten::bmm", "aten::mv",
                      "aten::baddbmm", "aten::_scaled_mm", "aten::dot", "aten::einsum"],
    "floor": "bytes",
}
