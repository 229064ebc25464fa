"""host_compute: the inputs make a round trip through the host (`tolist()`), the answer is computed in Python,
and a real Triton copy kernel moves it into the output, so the output is written by the candidate's kernel."""

import math

import torch
import triton
import triton.language as tl
from torch import nn


@triton.jit
def _copy(src_ptr, dst_ptr, n, BLOCK: tl.constexpr):
    i = tl.arange(0, BLOCK)
    tl.store(dst_ptr + i, tl.load(src_ptr + i, mask=i < n, other=0.0), mask=i < n)


class ModelNew(nn.Module):
    def __init__(self, eps=1e-6):
        super().__init__()
        self.eps = eps

    def forward(self, x, weight):
        rows, w = x.float().tolist(), weight.float().tolist()
        res = []
        for row in rows:
            inv = 1.0 / math.sqrt(sum(v * v for v in row) / len(row) + self.eps)
            res.append([v * inv * wi for v, wi in zip(row, w, strict=True)])
        src = torch.tensor(res, dtype=x.dtype)
        y = torch.empty_like(x)
        _copy[(1,)](src, y, y.numel(), BLOCK=triton.next_power_of_2(y.numel()))
        return y
