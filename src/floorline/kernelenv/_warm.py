"""Imported once by the worker fork server: brings in what the first launch of a Triton kernel would otherwise
import lazily in every worker (the CPU interpreter's machinery and its dispatch of launches), so a fresh worker
starts in milliseconds. Runs no candidate code, holds no secret, and never touches CUDA."""

import os

if os.environ.get("TRITON_INTERPRET") == "1":
    import torch
    import triton
    import triton.language as tl

    @triton.jit
    def _warm_kernel(x_ptr, n, BLOCK: tl.constexpr):
        i = tl.arange(0, BLOCK)
        x = tl.load(x_ptr + i, mask=i < n, other=0.0)
        tl.store(x_ptr + i, tl.sqrt(tl.abs(x)) + tl.sum(x, axis=0) * 0.0, mask=i < n)

    _warm_kernel[(1,)](torch.ones(4), 4, BLOCK=4)


def _warm_modes() -> None:
    """Entering a Python dispatch mode the first time imports a second's worth of torch; pay it here, once."""
    import torch

    from floorline.kernelenv.worker import _make_modes

    fn_mode, dispatch_mode = _make_modes()[1], _make_modes()[0]
    with fn_mode, dispatch_mode:
        torch.ones(2).add(1).sum()


_warm_modes()
