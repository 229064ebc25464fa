"""Registers, spills and shared memory of the grouped MoE kernel compiled for sm_90, no GPU needed.

Compiles kernels/moe_grouped.py at qwen3-30b-a3b shapes with the divisibility the JIT would see at
launch (pointers and multiple-of-16 integers: tt.divisibility=16) for each config in the device
sweep (scripts/bench_moe_grouped.py) and prints cuobjdump -res-usage. A STACK above 0 is a spill.
Usage: PYTHONPATH=src python3 scripts/regs_moe_grouped.py
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource

sys.path.insert(0, str(Path(__file__).parent))
from bench_moe_grouped import SWEEP_DOWN, SWEEP_GATE_UP  # noqa: E402

from floorline.kernels.moe_grouped import GroupedConfig, _moe_grouped_kernel  # noqa: E402

TARGET = GPUTarget("cuda", 90, 32)
BIN = Path(os.path.dirname(triton.__file__)) / "backends" / "nvidia" / "bin"
INTS = ["S", "N", "K", "INTER", "ROW_DIV", "N_TILES", "s_x", "s_we", "s_wn", "s_se", "s_out"]
NOT_DIV = {"ROW_DIV", "N_TILES"}  # 8 or 1, and 24..64 tiles: not multiples of 16 in general


def compile_one(c: GroupedConfig, swiglu: bool, wdtype: str, slots: int) -> str:
    sig = {"x_ptr": "*fp32", "w_ptr": wdtype, "scale_ptr": "*fp32", "slot_e_ptr": "*i32", "order_ptr": "*i32",
           "slot_w_ptr": "*fp32", "out_ptr": "*fp32"} | {n: "i32" for n in INTS}
    const = dict(SPLIT=1, SWIGLU=swiglu, HAS_SCALE=wdtype != "*bf16", HAS_WEIGHT=not swiglu, TOKENS=c.tokens,
                 BLOCK_N=c.block_n, BLOCK_K=c.block_k, S_P2=triton.next_power_of_2(slots), UPCAST=False)
    sig |= {k: "constexpr" for k in const}
    names = list(sig)
    attrs = {(names.index(n),): [["tt.divisibility", 16]] for n in names if sig[n] != "constexpr" and n not in NOT_DIV}
    k = triton.compile(ASTSource(_moe_grouped_kernel, sig, const, attrs), target=TARGET,
                       options={"num_warps": c.num_warps, "num_stages": c.num_stages})
    with tempfile.NamedTemporaryFile(suffix=".cubin") as f:
        f.write(k.asm["cubin"])
        f.flush()
        res = subprocess.run([str(BIN / "cuobjdump"), "-res-usage", f.name], capture_output=True, text=True,
                             check=True).stdout
    line = next(ln for ln in res.splitlines() if "REG:" in ln).split()
    fields = dict(x.split(":") for x in line if x.startswith(("REG:", "STACK:")))
    return f"regs {fields['REG']:>3} stack {fields['STACK']:>4} smem {k.metadata.shared // 1024:3d} KiB"


def main() -> int:
    for op, sweep, swiglu in (("gate_up", SWEEP_GATE_UP, True), ("down", SWEEP_DOWN, False)):
        for c in sweep:
            for wdtype in ("*bf16", "*fp8e4nv"):
                r = compile_one(c, swiglu, wdtype, 512)
                print(f"{op:8s} {wdtype[1:]:8s} bn={c.block_n:3d} bk={c.block_k:3d} T={c.tokens} w={c.num_warps} "
                      f"st={c.num_stages}: {r}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
