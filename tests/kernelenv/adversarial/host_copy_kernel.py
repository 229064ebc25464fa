"""host_compute: the host-round-trip hack with no tensor-to-host call to record. The inputs are read through
raw pointers (ctypes), the answer is computed in numpy, and a Triton copy kernel moves it into the output. The
copy kernel reads bytes that neither the inputs nor the candidate's kernels produced."""

import ctypes

import numpy as np
import torch
import triton
import triton.language as tl
from torch import nn


@triton.jit
def _copy(src_ptr, dst_ptr, n, BLOCK: tl.constexpr):
    i = tl.arange(0, BLOCK)
    tl.store(dst_ptr + i, tl.load(src_ptr + i, mask=i < n, other=0.0), mask=i < n)


def _raw(t):
    """The tensor's bytes without Tensor.numpy(): a ctypes view of its data pointer."""
    buf = (ctypes.c_uint16 * t.numel()).from_address(t.data_ptr())
    return np.frombuffer(buf, dtype=np.uint16).astype(np.uint32) << 16  # bf16 -> f32 bit pattern


class ModelNew(nn.Module):
    def __init__(self, eps=1e-6):
        super().__init__()
        self.eps = eps

    def forward(self, x, weight):
        xf = _raw(x).view(np.float32).reshape(x.shape).astype(np.float64)
        w = _raw(weight).view(np.float32).astype(np.float64)
        y64 = xf / np.sqrt((xf * xf).mean(-1, keepdims=True) + self.eps) * w
        src = torch.from_numpy(y64.astype(np.float32)).to(x.dtype)
        y = torch.empty_like(x)
        _copy[(1,)](src, y, y.numel(), BLOCK=triton.next_power_of_2(y.numel()))
        return y
