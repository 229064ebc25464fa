"""nondeterministic: within tolerance every time, but the bits change from call to call (here a random
perturbation far below the tolerance, standing in for unordered atomics)."""

import random

import torch
import triton
import triton.language as tl
from torch import nn


@triton.jit
def _noisy_rmsnorm(x_ptr, w_ptr, y_ptr, n_cols, eps, seed, BLOCK: tl.constexpr):
    row = tl.program_id(0)
    cols = tl.arange(0, BLOCK)
    mask = cols < n_cols
    x = tl.load(x_ptr + row * n_cols + cols, mask=mask, other=0.0).to(tl.float32)
    w = tl.load(w_ptr + cols, mask=mask, other=0.0).to(tl.float32)
    rms = tl.rsqrt(tl.sum(x * x, axis=0) / n_cols + eps)
    noise = 1.0 + 0.004 * (tl.rand(seed, row * BLOCK + cols) - 0.5)
    tl.store(y_ptr + row * n_cols + cols, (x * rms * w * noise).to(y_ptr.dtype.element_ty), mask=mask)


class ModelNew(nn.Module):
    def __init__(self, eps=1e-6):
        super().__init__()
        self.eps = eps

    def forward(self, x, weight):
        y = torch.empty_like(x)
        _noisy_rmsnorm[(x.shape[0],)](x, weight, y, x.shape[1], self.eps, random.randrange(1 << 30),
                                      BLOCK=triton.next_power_of_2(x.shape[1]))
        return y
