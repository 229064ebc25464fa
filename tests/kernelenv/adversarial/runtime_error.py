"""runtime_error: the kernel launch passes too few arguments and raises inside forward."""

import torch
from torch import nn

from floorline.kernelenv.candidates.rmsnorm import _rmsnorm_kernel


class ModelNew(nn.Module):
    def __init__(self, eps=1e-6):
        super().__init__()

    def forward(self, x, weight):
        y = torch.empty_like(x)
        _rmsnorm_kernel[(x.shape[0],)](x, weight, y, x.shape[1])
        return y
