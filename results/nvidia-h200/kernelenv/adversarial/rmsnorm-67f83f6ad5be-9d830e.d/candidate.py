"""unsynchronized_work (stream injection): the kernel is queued on a private stream behind a delay, so the
caller's stream (and a timer that only records events on it) sees an immediate return."""

import torch
import triton
from torch import nn

from floorline.kernelenv.candidates.rmsnorm import _rmsnorm_kernel

_side = None


class ModelNew(nn.Module):
    def __init__(self, eps=1e-6):
        super().__init__()
        self.eps = eps

    def forward(self, x, weight):
        global _side
        _side = _side or torch.cuda.Stream()
        y = torch.empty_like(x)
        with torch.cuda.stream(_side):
            torch.cuda._sleep(2_000_000)  # ~1 ms of spinning before the real work
            _rmsnorm_kernel[(x.shape[0],)](x, weight, y, x.shape[1], x.stride(0), y.stride(0), self.eps,
                                           BLOCK=triton.next_power_of_2(x.shape[1]))
        return y
