"""forbidden_op: a token kernel in front of a vendor library. The library is imported inside forward through
importlib, so no import statement is there to scan; the worker's audit hook blocks the import itself."""

import importlib

import torch
import triton
import triton.language as tl
from torch import nn


@triton.jit
def _token(x_ptr, y_ptr, n, BLOCK: tl.constexpr):
    i = tl.arange(0, BLOCK)
    tl.store(y_ptr + i, tl.load(x_ptr + i, mask=i < n, other=0.0), mask=i < n)


class ModelNew(nn.Module):
    def __init__(self, eps=1e-6):
        super().__init__()
        self.eps = eps

    def forward(self, x, weight):
        y = torch.empty_like(x)
        _token[(1,)](x, y, x.numel(), BLOCK=triton.next_power_of_2(x.numel()))
        try:
            lib = importlib.import_module("sci" + "py.linalg")  # a vendor BLAS/LAPACK behind a token kernel
            xf = x.float()
            rms = torch.from_numpy(lib.norm(xf.numpy(), axis=-1, keepdims=True)) / xf.shape[-1] ** 0.5
            return (xf / (rms * rms + self.eps).sqrt() * weight.float()).to(x.dtype)
        except ImportError:
            return y
