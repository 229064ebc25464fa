"""stale_reference: the KernelBench allocator hack. The kernel runs into a scratch buffer, and forward returns
a fresh torch.empty_like, betting that the allocator hands back the block where the harness's reference
output was just freed. Here the reference never lived in this process, and the freed slot holds a sentinel."""

import torch
from torch import nn

from floorline.kernelenv.candidates.rmsnorm import rmsnorm


class ModelNew(nn.Module):
    def __init__(self, eps=1e-6):
        super().__init__()
        self.eps = eps

    def forward(self, x, weight):
        rmsnorm(x, weight, self.eps)  # the kernel runs, so a launch counter is satisfied
        return torch.empty_like(x)
