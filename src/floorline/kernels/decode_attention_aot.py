"""Ahead-of-time builds of the decode-attention kernels for sm_90, on a machine without a GPU.

The CPU interpreter runs any shape, the GPU compiler does not: session 4 found 27 GPU test failures of
FP8 tensor-core builds with 16-token blocks (an FP8 wgmma reduces over >= 32) and a bf16 build that
asks for 274 KB of shared memory (sm_90 has 227 KB per block), both invisible to the CPU tests.
`check_build` compiles one (shape, config) for sm_90 with Triton's bundled ptxas, the way the JIT
would at launch, and returns why it cannot run there, or None.

Shared memory and register counts depend on the Triton version: the device image has Triton 3.6, so
run `scripts/check_sm90_builds.py` with that version first on the path (see its docstring).
"""

from __future__ import annotations

from dataclasses import dataclass

import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource

from floorline.gpu.sm90_launches import SM90_SHARED_BYTES, refusal  # noqa: F401 - the limit is part of this API
from floorline.kernels.decode_attention import DecodeConfig, _decode_kernel

SM90 = GPUTarget("cuda", 90, 32)
_PTR = {"bf16": "*bf16", "fp8": "*fp8e4nv", "fp4": "*u8"}
_SCALE_PTR = {"bf16": "*bf16", "fp8": "*fp32", "fp4": "*u8"}
# launch arguments that are not multiples of 16 in general (the JIT marks the others divisible by 16;
# split_len is a whole number of blocks)
_NOT_DIVISIBLE = {"sl_h", "sl_t", "sl_b", "window", "qk_scale", "sout_h", "n_splits"}


@dataclass(frozen=True)
class BuildShape:
    """What the launch fixes besides the config: KV dtype, head_dim, GQA group, page size, query tokens."""

    kv_dtype: str = "bf16"
    head_dim: int = 128
    group: int = 16
    page_size: int = 64
    tokens: int = 1

    def label(self) -> str:
        return f"{self.kv_dtype} d{self.head_dim} g{self.group} p{self.page_size} t{self.tokens}"


def _constexprs(shape: BuildShape, cfg: DecodeConfig) -> dict[str, object]:
    """The constexpr arguments `decode_attention` passes for this shape (see _launch_v1/_launch_v2)."""
    scalar_page = shape.page_size % cfg.block_n == 0
    return dict(
        PAGE_SIZE=shape.page_size, T=shape.tokens, G=shape.group, D=shape.head_dim,
        BLOCK_M=max(16, triton.next_power_of_2(shape.group * shape.tokens)), BLOCK_N=cfg.block_n,
        KV_DTYPE=shape.kv_dtype, SCALAR_PAGE=scalar_page, V_T=shape.kv_dtype == "fp8", UPCAST_BF16=False,
        ALIGN_HINT=cfg.align_hint, PREFETCH=cfg.prefetch and scalar_page and shape.kv_dtype != "fp4",
        FUSE_COMBINE=cfg.fuse_combine, BLOCK_S=64 if cfg.fuse_combine else 2,
        FP8_MMA=cfg.fp8_mma and shape.kv_dtype == "fp8",
    )


def compile_sm90(shape: BuildShape, cfg: DecodeConfig) -> object:
    """triton.compile of the kernel `decode_attention` would launch for (shape, cfg), for sm_90."""
    if cfg.variant == "v2":
        from floorline.kernels.decode_attention_v2 import _decode_kernel_v2 as fn
    else:
        fn = _decode_kernel
    if not hasattr(fn, "cache_key"):  # TRITON_INTERPRET=1 made every kernel an InterpretedFunction
        raise RuntimeError("compile_sm90 needs compiled kernels: run without TRITON_INTERPRET=1")
    names = fn.arg_names
    const = {k: v for k, v in _constexprs(shape, cfg).items() if k in names}
    if shape.kv_dtype == "fp8" and "sv_slot" in names:  # fp8 V is stored transposed: token stride 1
        const["sv_slot"] = 1
    sig: dict[str, str] = {}
    for n in names:
        if n in const:
            sig[n] = "constexpr"
        elif n.endswith("_ptr"):
            sig[n] = "*i32" if n in ("pt_ptr", "len_ptr", "cnt_ptr") else "*fp32"
        else:
            sig[n] = "fp32" if n == "qk_scale" else "i32"
    sig["q_ptr"] = "*bf16"
    sig["k_ptr"] = sig["v_ptr"] = _PTR[shape.kv_dtype]
    sig["ks_ptr"] = sig["vs_ptr"] = _SCALE_PTR[shape.kv_dtype]
    if "out_ptr" in names:
        sig["out_ptr"] = "*bf16"
    attrs = {(names.index(n),): [["tt.divisibility", 16]] for n in names
             if sig[n] not in ("constexpr", "fp32") and n not in _NOT_DIVISIBLE}
    opts: dict[str, int] = {"num_warps": cfg.num_warps, "num_stages": cfg.num_stages}
    if cfg.maxnreg:
        opts["maxnreg"] = cfg.maxnreg
    return triton.compile(ASTSource(fn, sig, const, attrs), target=SM90, options=opts)


def check_build(shape: BuildShape, cfg: DecodeConfig) -> str | None:
    """None if (shape, cfg) compiles for sm_90 and fits its shared memory, else the one-line reason."""
    return refusal(lambda: compile_sm90(shape, cfg))
