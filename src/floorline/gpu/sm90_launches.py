"""Record every Triton launch the CPU tests make through the interpreter, then compile each one for sm_90
without a GPU, through Triton's own argument specialization (the JIT's binder and `_pack_args`).

Why: the interpreter runs shapes the GPU compiler refuses (session 4: an FP8 dot over 16 tokens, a
274 KB shared-memory build; 28 GPU test failures found only on the device). Recording the launches of
the whole CPU suite and compiling them here finds that class of failure before device time is spent.

    FLOORLINE_SM90_RECORD=/tmp/launches.jsonl python3 -m pytest tests/kernels tests/model
    PYTHONPATH=/tmp/tri36 python3 scripts/check_sm90_launches.py /tmp/launches.jsonl

A record holds the kernel (module:qualname), each argument as dtype + 16-byte alignment for tensors or
the value for scalars, and the launch options (num_warps, num_stages, maxnreg, launch_pdl). The grid is
not recorded: it does not change the compiled kernel.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

SM90_SHARED_BYTES = 232448  # cudaDevAttrMaxSharedMemoryPerBlockOptin on H100/H200
# constexprs our launchers set from TRITON_INTERPRET (the interpreter's dot has no bf16 path, so it upcasts
# first); on the GPU they are False. The register cap (maxnreg) is not passed to the interpreter at all.
INTERPRETER_FLAGS = ("UPCAST", "UPCAST_BF16")
_SCALARS = (bool, int, float, str, type(None))


def encode_arg(a: Any) -> dict[str, Any] | None:
    """A JSON form of one launch argument, or None when it cannot be rebuilt away from this process."""
    import torch

    if isinstance(a, torch.Tensor):
        return {"tensor": str(a.dtype).removeprefix("torch."), "aligned16": a.data_ptr() % 16 == 0}
    if isinstance(a, _SCALARS):
        return {"value": a}
    name = getattr(a, "name", None)  # a tl.dtype passed as a constexpr
    if type(a).__module__.startswith("triton") and isinstance(name, str):
        return {"tl_dtype": name}
    return None


def decode_arg(e: dict[str, Any]) -> Any:
    import torch

    if "tensor" in e:
        dtype = getattr(torch, e["tensor"])
        base = torch.empty(64, dtype=dtype)  # CPU allocations are 64-byte aligned
        return base if e["aligned16"] else base[1:]  # one element off: not a multiple of 16 bytes
    if "tl_dtype" in e:
        import triton.language as tl

        return getattr(tl, e["tl_dtype"])
    return e["value"]


def launch_record(fn: Any, args: tuple, kwargs: dict) -> dict[str, Any] | None:
    enc_args = [encode_arg(a) for a in args]
    enc_kwargs = {k: encode_arg(False if k in INTERPRETER_FLAGS else v) for k, v in kwargs.items()}
    if any(e is None for e in enc_args) or any(e is None for e in enc_kwargs.values()):
        return None
    return {"kernel": f"{fn.__module__}:{fn.__qualname__}", "args": enc_args, "kwargs": enc_kwargs}


@contextmanager
def recording(path: str) -> Iterator[None]:
    """Record the interpreted launches made inside the block (install_recorder, then undone)."""
    from triton.runtime.interpreter import InterpretedFunction

    run = InterpretedFunction.run
    install_recorder(path)
    try:
        yield
    finally:
        InterpretedFunction.run = run


def install_recorder(path: str) -> None:
    """Append each distinct interpreted launch of this process to `path` (JSON lines)."""
    from triton.runtime.interpreter import InterpretedFunction

    seen: set[str] = set()
    run = InterpretedFunction.run

    def recording_run(self, *args, grid, warmup, **kwargs):
        rec = launch_record(self.fn, args, kwargs)
        if rec is not None:
            line = json.dumps(rec, sort_keys=True)
            if line not in seen:
                seen.add(line)
                with open(path, "a") as f:
                    f.write(line + "\n")
        return run(self, *args, grid=grid, warmup=warmup, **kwargs)

    InterpretedFunction.run = recording_run


def compile_sm90(rec: dict[str, Any]) -> Any:
    """Compile one recorded launch for sm_90 the way JITFunction.run would (needs TRITON_INTERPRET unset)."""
    import importlib

    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource, compile, make_backend
    from triton.runtime.jit import create_function_from_signature

    module, qualname = rec["kernel"].split(":")
    fn = importlib.import_module(module)
    for part in qualname.split("."):
        fn = getattr(fn, part)
    if not hasattr(fn, "params"):  # an InterpretedFunction: TRITON_INTERPRET=1 in this process
        raise RuntimeError("compile_sm90 needs compiled kernels: run without TRITON_INTERPRET=1")
    target = GPUTarget("cuda", 90, 32)
    backend = make_backend(target)
    binder = create_function_from_signature(fn.signature, fn.params, backend)
    args = [decode_arg(e) for e in rec["args"]]
    kwargs = {k: decode_arg(e) for k, e in rec["kwargs"].items()}
    kwargs.setdefault("debug", False)
    bound, specialization, options = binder(*args, **kwargs)
    options, signature, constexprs, attrs = fn._pack_args(backend, kwargs, bound, specialization, options)
    return compile(ASTSource(fn, signature, constexprs, attrs), target=target, options=options.__dict__)


def check_launch(rec: dict[str, Any]) -> str | None:
    """None if the recorded launch compiles for sm_90 within its shared memory, else the one-line reason."""
    return refusal(lambda: compile_sm90(rec))


def refusal(build: Callable[[], Any]) -> str | None:
    """Run an sm_90 compile; None if it compiles within sm_90's shared memory, else the one-line reason.
    A compile that cannot start because the kernels are interpreted (TRITON_INTERPRET=1) raises."""
    try:
        kernel = build()
    except Exception as e:  # noqa: BLE001 - any compiler refusal is the answer
        if isinstance(e, RuntimeError) and "TRITON_INTERPRET" in str(e):
            raise
        while e.__cause__ is not None:  # a CompilationError wraps the frontend's own reason
            e = e.__cause__
        lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
        return f"{type(e).__name__}: {(lines[-1] if lines else '')[:200]}"
    if kernel.metadata.shared > SM90_SHARED_BYTES:
        return f"shared memory {kernel.metadata.shared} B > {SM90_SHARED_BYTES} B (sm_90 per block)"
    return None
