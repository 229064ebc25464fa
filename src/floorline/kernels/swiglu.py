"""SwiGLU: silu(gate) * up. The jit helper is what the MoE GEMV's epilogue calls; the launcher is the
stand-alone op over a [M, 2I] gate-up tensor (gate in the first I columns, up in the last I)."""

from __future__ import annotations

from typing import Any

import triton
import triton.language as tl

from floorline.errors import InputError


@triton.jit
def silu_mul(g, u):
    g = g.to(tl.float32)
    return g / (1.0 + tl.exp(-g)) * u.to(tl.float32)


@triton.jit
def _swiglu_kernel(x_ptr, out_ptr, inter, s_x, s_out, BLOCK: tl.constexpr):
    row = tl.program_id(0)
    offs = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < inter
    g = tl.load(x_ptr + row * s_x + offs, mask=mask, other=0.0)
    u = tl.load(x_ptr + row * s_x + inter + offs, mask=mask, other=0.0)
    tl.store(out_ptr + row * s_out + offs, silu_mul(g, u).to(out_ptr.dtype.element_ty), mask=mask)


def swiglu(gate_up: Any, out: Any) -> Any:
    """gate_up: [M, 2I]; out: [M, I]."""
    M, two_i = gate_up.shape
    if two_i % 2 or out.shape != (M, two_i // 2) or gate_up.stride(1) != 1 or out.stride(1) != 1:
        raise InputError(f"swiglu: gate_up [M, 2I] and out [M, I] with contiguous rows, got {tuple(gate_up.shape)}, {tuple(out.shape)}")
    block = min(1024, triton.next_power_of_2(two_i // 2))
    _swiglu_kernel[(M, triton.cdiv(two_i // 2, block))](gate_up, out, two_i // 2, gate_up.stride(0), out.stride(0), BLOCK=block)
    return out
