"""uninitialized_memory: the grid is one row short, so the last row of the output is never written."""

import torch
import triton
from torch import nn

from floorline.kernelenv.candidates.rmsnorm import _rmsnorm_kernel


class ModelNew(nn.Module):
    def __init__(self, eps=1e-6):
        super().__init__()
        self.eps = eps

    def forward(self, x, weight):
        y = torch.empty_like(x)
        _rmsnorm_kernel[(x.shape[0] - 1,)](x, weight, y, x.shape[1], x.stride(0), y.stride(0), self.eps,
                                           BLOCK=triton.next_power_of_2(x.shape[1]))
        return y
