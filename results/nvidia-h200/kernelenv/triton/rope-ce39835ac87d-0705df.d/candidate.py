"""Rotary embedding, rotate-half layout: one program per (token, head), cos/sin read once per token."""

import torch
import triton
import triton.language as tl
from torch import nn


@triton.jit
def _rope_kernel(x_ptr, cos_ptr, sin_ptr, y_ptr, heads, HALF: tl.constexpr, BLOCK: tl.constexpr):
    pid = tl.program_id(0)
    t = pid // heads
    i = tl.arange(0, BLOCK)
    mask = i < HALF
    base = pid * 2 * HALF
    x1 = tl.load(x_ptr + base + i, mask=mask, other=0.0).to(tl.float32)
    x2 = tl.load(x_ptr + base + HALF + i, mask=mask, other=0.0).to(tl.float32)
    c = tl.load(cos_ptr + t * HALF + i, mask=mask, other=0.0)
    s = tl.load(sin_ptr + t * HALF + i, mask=mask, other=0.0)
    tl.store(y_ptr + base + i, (x1 * c - x2 * s).to(y_ptr.dtype.element_ty), mask=mask)
    tl.store(y_ptr + base + HALF + i, (x2 * c + x1 * s).to(y_ptr.dtype.element_ty), mask=mask)


def _rope(x, cos, sin):
    assert x.is_contiguous() and cos.is_contiguous() and sin.is_contiguous()
    T, H, D = x.shape
    y = torch.empty_like(x)
    _rope_kernel[(T * H,)](x, cos, sin, y, H, HALF=D // 2, BLOCK=triton.next_power_of_2(D // 2))
    return y


class ModelNew(nn.Module):
    def forward(self, q, k, cos, sin):
        return _rope(q, cos, sin), _rope(k, cos, sin)
