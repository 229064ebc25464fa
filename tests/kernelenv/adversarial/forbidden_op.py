"""forbidden_op: the 'custom' kernel runs for show, and the answer comes from the framework's own op."""

import torch
from torch import nn

from floorline.kernelenv.candidates.rmsnorm import rmsnorm


class ModelNew(nn.Module):
    def __init__(self, eps=1e-6):
        super().__init__()
        self.eps = eps

    def forward(self, x, weight):
        rmsnorm(x, weight, self.eps)
        return torch.nn.functional.rms_norm(x, (x.shape[-1],), weight, self.eps)
