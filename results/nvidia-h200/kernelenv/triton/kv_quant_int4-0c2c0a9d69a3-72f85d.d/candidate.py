"""KV quantize to packed signed 4-bit with a per-row absmax/7 scale: one program per row, even/odd halves."""

import torch
import triton
import triton.language as tl
from torch import nn


@triton.jit
def _kv_quant_int4_kernel(x_ptr, p_ptr, s_ptr, d, BLOCK: tl.constexpr):
    row = tl.program_id(0)
    j = tl.arange(0, BLOCK)
    mask = j < d // 2
    xe = tl.load(x_ptr + row * d + 2 * j, mask=mask, other=0.0).to(tl.float32)
    xo = tl.load(x_ptr + row * d + 2 * j + 1, mask=mask, other=0.0).to(tl.float32)
    amax = tl.maximum(tl.max(tl.abs(xe), axis=0), tl.max(tl.abs(xo), axis=0))
    scale = tl.maximum(amax, 1e-12) / 7.0
    qe = tl.minimum(tl.maximum(tl.floor(xe / scale + 0.5), -8.0), 7.0).to(tl.int32)
    qo = tl.minimum(tl.maximum(tl.floor(xo / scale + 0.5), -8.0), 7.0).to(tl.int32)
    packed = (qe & 0xF) | ((qo & 0xF) << 4)
    tl.store(p_ptr + row * (d // 2) + j, packed.to(tl.uint8), mask=mask)
    tl.store(s_ptr + row, scale)


class ModelNew(nn.Module):
    def forward(self, x):
        assert x.is_contiguous() and x.dim() == 2 and x.shape[1] % 2 == 0
        n, d = x.shape
        p = torch.empty(n, d // 2, dtype=torch.uint8, device=x.device)
        s = torch.empty(n, dtype=torch.float32, device=x.device)
        _kv_quant_int4_kernel[(n,)](x, p, s, d, BLOCK=triton.next_power_of_2(d // 2))
        return p, s
