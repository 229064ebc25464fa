"""Compile the persistent batch-1 expert kernel (kernels/moe_b1_persistent.py) for sm_90 without a GPU, at
the bench's shapes (qwen3-30b-a3b: H 2048, I 768, 128 experts, k 8), and print per build: registers and
spills (cuobjdump -res-usage; STACK > 0 is a spill), shared memory, programs per SM that fit
(moe_b1_persistent.resident_per_sm, what the launcher clamps the grid to), and whether the barrier build's
PTX has the gpu-scope acq_rel arrival, the release generation bump and the acquire spin loads.

PHASE 0 is the one-launch build (grid barrier) that no CPU test can record (the interpreter runs the
two-launch mode only), so scripts/check_sm90_launches.py never sees it; this script is its compile check.
Arguments go through Triton's own binder (floorline.gpu.sm90_launches), as a launch would specialize them.

    PYTHONPATH=/tmp/tri36:src python3 scripts/regs_moe_b1_persistent.py [--json] [--quick]

Exit 1 if a build fails to compile or the barrier build does not fit its config's programs per SM
(spills are printed; the two-launch builds need no co-residency);
3 if this Triton has no CUDA backend or no cuobjdump.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

E, H, INTER, K = 128, 2048, 768, 8


def fake(shape: tuple[int, ...], dtype) -> object:
    """A meta tensor of `shape` (no storage; only the dtype, strides and alignment reach the compiler, and a
    meta tensor's data_ptr() is 0: 16-byte aligned, as the device's allocations are)."""
    import torch

    return torch.empty(shape, dtype=dtype, device="meta")


def build_rows(quick: bool) -> list[dict]:
    import torch
    import triton

    from floorline.gpu.sm90_launches import compile_sm90, launch_record
    from floorline.kernels.moe_b1_persistent import (
        MoePersistentConfig,
        _moe_b1_persistent_kernel,
        kernel_args,
        resident_per_sm,
    )

    cuobjdump = Path(os.path.dirname(triton.__file__)) / "backends" / "nvidia" / "bin" / "cuobjdump"
    configs = [MoePersistentConfig()]
    if not quick:
        # single-buffered; down at the two-launch tuned tile; 2 programs per SM (no register cap)
        configs += [MoePersistentConfig(double_buffer=False), MoePersistentConfig(down_block_k=128),
                    MoePersistentConfig(programs_per_sm=2)]
    rows = []
    for cfg in configs:
        for wdtype in ((torch.bfloat16,) if quick else (torch.bfloat16, torch.float8_e4m3fn)):
            fp8 = wdtype != torch.bfloat16
            res, act = fake((1, H), torch.float32), fake((K, INTER), torch.float32)
            for phase in (0, 1, 2):
                # PHASE 0 as the one-launch mode builds it (register cap), 1 and 2 as the two-launch mode (none)
                args, const = kernel_args(
                    res, fake((E, 2 * INTER, H), wdtype), fake((E, H, INTER), wdtype), fake((K,), torch.int32),
                    fake((K,), torch.float32), act, scale_gu=fake((E, 2 * INTER), torch.float32) if fp8 else None,
                    scale_down=fake((E, H), torch.float32) if fp8 else None, norm=(fake((H,), torch.bfloat16), 1e-6),
                    counter=fake((96,), torch.int32), cfg=cfg, pdl=True, one_launch=phase == 0)
                rec = launch_record(_moe_b1_persistent_kernel, args, {**const, "PHASE": phase})
                row = {"config": cfg.__dict__, "weights": str(wdtype).removeprefix("torch."), "phase": phase}
                try:
                    kern = compile_sm90(rec)
                except Exception as e:  # noqa: BLE001 - the refusal is the answer
                    row["error"] = f"{type(e).__name__}: {str(e).splitlines()[-1][:200] if str(e) else ''}"
                    rows.append(row)
                    continue
                with tempfile.NamedTemporaryFile(suffix=".cubin") as f:
                    f.write(kern.asm["cubin"])
                    f.flush()
                    out = subprocess.run([str(cuobjdump), "-res-usage", f.name], capture_output=True, text=True,
                                         check=True).stdout
                line = next(ln for ln in out.splitlines() if "REG:" in ln)
                regs = int(re.search(r"REG:(\d+)", line).group(1))
                stack = int(re.search(r"STACK:(\d+)", line).group(1))
                ptx = kern.asm["ptx"]
                row.update(regs=regs, spills=stack, shared=kern.metadata.shared,
                           per_sm=resident_per_sm(regs, cfg.num_warps, kern.metadata.shared),
                           ptx_arrive=bool(re.search(r"atom\.global\.gpu\.acq_rel\.add", ptx)),
                           ptx_release=bool(re.search(r"(atom|red)\.global\.gpu\.release\.add", ptx)),
                           ptx_acquire="ld.global.acquire.gpu.b32" in ptx)
                rows.append(row)
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--quick", action="store_true", help="the default config, bf16 only")
    args = ap.parse_args()
    if os.environ.get("TRITON_INTERPRET") == "1":
        print("regs_moe_b1_persistent: unset TRITON_INTERPRET (the compiles need the real kernels)", file=sys.stderr)
        return 2
    import triton

    bindir = Path(os.path.dirname(triton.__file__)) / "backends" / "nvidia" / "bin"
    if not (bindir / "cuobjdump").exists() or not (bindir / "ptxas").exists():
        print(f"regs_moe_b1_persistent: Triton {triton.__version__} has no CUDA backend binaries in {bindir}",
              file=sys.stderr)
        return 3
    rows = build_rows(args.quick)
    # a build that does not fit the programs per SM its config asks for would be clamped by the launcher (a
    # smaller grid than asked); spills are printed, not refused (the FP8 default build spills 24 bytes)
    bad = [r for r in rows if "error" in r or (r["phase"] == 0 and r["per_sm"] < r["config"]["programs_per_sm"])]
    if args.json:
        print(json.dumps({"triton": triton.__version__, "builds": rows, "bad": len(bad)}))
    else:
        print(f"Triton {triton.__version__}, sm_90, H {H} I {INTER} E {E} k {K}, PDL on")
        for r in rows:
            c = r["config"]
            head = (f"  ppsm {c['programs_per_sm']} gu {c['gate_up_block_n']}x{c['gate_up_block_k']} "
                    f"dn {c['down_block_n']}x{c['down_block_k']} w{c['num_warps']} dbuf {int(c['double_buffer'])} "
                    f"{r['weights']:13s} PHASE {r['phase']}: ")
            if "error" in r:
                print(head + r["error"])
                continue
            tail = (f" arrive/release/acquire {int(r['ptx_arrive'])}{int(r['ptx_release'])}{int(r['ptx_acquire'])}"
                    if r["phase"] == 0 else "")
            print(head + f"regs {r['regs']:3d} stack {r['spills']:3d} smem {r['shared']:6d} B, {r['per_sm']} per SM" + tail)
        if bad:
            print(f"{len(bad)} build(s) failed or fit fewer programs per SM than asked")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
