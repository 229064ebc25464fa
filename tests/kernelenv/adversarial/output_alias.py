"""output_alias (add_rmsnorm): both outputs are the same tensor; a caller writing one corrupts the other."""

import torch
import triton
from torch import nn

from floorline.kernelenv.candidates.add_rmsnorm import _add_rmsnorm_kernel


class ModelNew(nn.Module):
    def __init__(self, eps=1e-6):
        super().__init__()
        self.eps = eps

    def forward(self, x, residual, weight):
        y = torch.empty_like(x)
        h = torch.empty_like(x)
        _add_rmsnorm_kernel[(x.shape[0],)](x, residual, weight, y, h, x.shape[1], self.eps,
                                           BLOCK=triton.next_power_of_2(x.shape[1]))
        return y, y
