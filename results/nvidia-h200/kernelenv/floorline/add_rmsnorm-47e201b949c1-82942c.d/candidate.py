"""add_rmsnorm through floorline.kernels.rmsnorm.add_rmsnorm: residual (float32) += x, then the norm of the sum.
floorline keeps the residual in float32 and normalises the unrounded sum; the task's reference rounds the sum
to bf16 first, a difference of one bf16 rounding, well inside the tolerance."""

import torch
from torch import nn

from floorline.kernels.rmsnorm import add_rmsnorm


class ModelNew(nn.Module):
    def __init__(self, eps: float = 1e-6):
        super().__init__()
        self.eps = eps

    def forward(self, x, residual, weight):
        res = residual.float()  # a private float32 copy: floorline updates the residual in place
        out = torch.empty_like(x)
        add_rmsnorm(res, weight, self.eps, out, delta=x)
        return out, res.to(x.dtype)
