"""rmsnorm through floorline.kernels.rmsnorm.add_rmsnorm (no delta): the residual stream it expects is float32,
so the bf16 input is widened (exact) and the normalised row is written straight out in bf16."""

import torch
from torch import nn

from floorline.kernels.rmsnorm import add_rmsnorm


class ModelNew(nn.Module):
    def __init__(self, eps: float = 1e-6):
        super().__init__()
        self.eps = eps

    def forward(self, x, weight):
        out = torch.empty_like(x)
        return add_rmsnorm(x.float(), weight, self.eps, out)
