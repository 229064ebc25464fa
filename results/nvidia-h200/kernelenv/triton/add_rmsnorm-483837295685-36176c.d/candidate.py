"""Fused residual add + RMSNorm: one program per row; the bf16-rounded sum is stored and normalised."""

import torch
import triton
import triton.language as tl
from torch import nn


@triton.jit
def _add_rmsnorm_kernel(x_ptr, r_ptr, w_ptr, y_ptr, h_ptr, n_cols, eps, BLOCK: tl.constexpr):
    row = tl.program_id(0)
    cols = tl.arange(0, BLOCK)
    mask = cols < n_cols
    off = row * n_cols + cols
    x = tl.load(x_ptr + off, mask=mask, other=0.0).to(tl.float32)
    r = tl.load(r_ptr + off, mask=mask, other=0.0).to(tl.float32)
    h = (x + r).to(h_ptr.dtype.element_ty)  # the residual stream is kept in bf16, so normalise what is stored
    tl.store(h_ptr + off, h, mask=mask)
    hf = h.to(tl.float32)
    w = tl.load(w_ptr + cols, mask=mask, other=0.0).to(tl.float32)
    rms = tl.rsqrt(tl.sum(hf * hf, axis=0) / n_cols + eps)
    tl.store(y_ptr + off, (hf * rms * w).to(y_ptr.dtype.element_ty), mask=mask)


class ModelNew(nn.Module):
    def __init__(self, eps: float = 1e-6):
        super().__init__()
        self.eps = eps

    def forward(self, x, residual, weight):
        assert x.is_contiguous() and residual.is_contiguous() and x.shape == residual.shape
        y = torch.empty_like(x)
        h = torch.empty_like(x)
        _add_rmsnorm_kernel[(x.shape[0],)](x, residual, weight, y, h, x.shape[1], self.eps,
                                           BLOCK=triton.next_power_of_2(x.shape[1]))
        return y, h
