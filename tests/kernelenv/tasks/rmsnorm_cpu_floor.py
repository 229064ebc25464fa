"""Test task: rmsnorm with an impossible CPU floor, to exercise the impossible_timing gate."""

import torch
from torch import nn


class Model(nn.Module):
    def __init__(self, eps: float = 1e-6):
        super().__init__()
        self.eps = eps

    def forward(self, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        # float64 math, rounded once to the output dtype: the reference every candidate is held to
        xd = x.double()
        rms = torch.rsqrt(xd.pow(2).mean(-1, keepdim=True) + self.eps)
        return (xd * rms * weight.double()).to(x.dtype)


class Baseline(nn.Module):
    """The named speed baseline: eager PyTorch at the task's dtype (torch.nn.functional.rms_norm)."""

    def __init__(self, eps: float = 1e-6):
        super().__init__()
        self.eps = eps

    def forward(self, x, weight):
        return torch.nn.functional.rms_norm(x, (x.shape[-1],), weight, self.eps)


def get_inputs(tokens: int = 8, hidden: int = 4096):
    return [torch.randn(tokens, hidden, dtype=torch.bfloat16), 1 + 0.1 * torch.randn(hidden, dtype=torch.bfloat16)]


def get_init_inputs():
    return [1e-6]


METADATA = {
    "op": "rmsnorm",
    "tolerance": {"atol": 0.02, "rtol": 0.02},  # about 2 bf16 ulps around 1.0
    "heldout_shapes": [{"tokens": 1, "hidden": 2880}, {"tokens": 5, "hidden": 1000}],
    "cpu_shape": {"tokens": 3, "hidden": 96},
    "cpu_heldout_shapes": [{"tokens": 1, "hidden": 70}, {"tokens": 2, "hidden": 130}],
    "forbidden_ops": ["aten::rms_norm", "aten::native_layer_norm", "aten::layer_norm"],
    "floor": "bytes",
    # a deliberately absurd ceiling (1 kB/s): any real run is "faster than the floor", which is the point
    "cpu_floor": {"bytes_per_s": 1000.0},
}
