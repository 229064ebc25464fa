"""What fp32 atomic adds into one small row cost on the GPU, for a fused expert gate-up + down kernel.

The question is in docs/notes/decode.md, session 6. That fusion has every gate-up program add a full
2048-float down row into the residual: 384 programs x 2048 floats per layer, 384 adds on every address.
Today's down kernel adds 16K floats: 1024 programs x 16 rows. Triton 3.6 emits
`atom.global.gpu.relaxed.add.v4.f32` for a contiguous block on sm_90.

Each shape launches `programs` programs, and each adds `width` floats into a [row] buffer.
Program p adds into columns (p % (row / width)) * width.
It is timed inside a CUDA graph by floorline.gpu.timing (`reps` launches per graph, median over `iters`
replays). The sums are checked exactly: the inputs are small integers, so every add order gives the same float.

    python3 scripts/bench_atomics.py [--json]            # GPU: times every shape
    TRITON_INTERPRET=1 python3 scripts/bench_atomics.py --check-only   # CPU: the sums only, small shapes
"""

from __future__ import annotations

import argparse
import json
import sys

import torch
import triton
import triton.language as tl

# (name, programs, width, row): the fused scheme, its 32-row variant, and today's down kernel
SHAPES = (("fused 16-row blocks", 384, 2048, 2048), ("fused 32-row blocks", 192, 2048, 2048),
          ("down kernel today", 1024, 16, 2048))


@triton.jit
def _add_rows(src_ptr, out_ptr, ROW: tl.constexpr, WIDTH: tl.constexpr):
    p = tl.program_id(0)
    offs = tl.arange(0, WIDTH)
    v = tl.load(src_ptr + p * WIDTH + offs)
    col = (p % (ROW // WIDTH)) * WIDTH
    tl.atomic_add(out_ptr + col + offs, v, sem="relaxed")


def launch(src: torch.Tensor, out: torch.Tensor, programs: int, width: int, row: int) -> None:
    _add_rows[(programs,)](src, out, ROW=row, WIDTH=width, num_warps=4)


def check(programs: int, width: int, row: int, device: str) -> None:
    g = torch.Generator().manual_seed(programs * 7919 + width)
    src = torch.randint(-8, 9, (programs, width), generator=g).float().to(device)
    out = torch.full((row,), 3.0, device=device)  # not zero: the kernel must add, not store
    launch(src, out, programs, width, row)
    want = torch.full((row,), 3.0, dtype=torch.float64)
    want.view(-1, width).index_add_(0, torch.arange(programs) % (row // width), src.cpu().double())
    if not torch.equal(out.cpu().double(), want):
        raise SystemExit(f"bench_atomics: wrong sums for programs={programs} width={width}")


def time_us(programs: int, width: int, row: int, reps: int, iters: int) -> float:
    from floorline.gpu.timing import TimingConfig, time_cuda

    src = torch.randn(programs, width, device="cuda")
    out = torch.zeros(row, device="cuda")
    cfg = TimingConfig(graph=True, ops_per_graph=reps, iters=iters)
    return time_cuda(lambda _i: launch(src, out, programs, width, row), cfg).median


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--check-only", action="store_true", help="check the sums (CPU interpreter: small shapes)")
    ap.add_argument("--reps", type=int, default=100)
    ap.add_argument("--iters", type=int, default=20)
    a = ap.parse_args(argv)
    if a.check_only:
        device = "cuda" if torch.cuda.is_available() else "cpu"
        for _, programs, width, row in ((None, 6, 64, 64), (None, 10, 16, 64), (None, 3, 32, 128)):
            check(programs, width, row, device)
        print("bench_atomics: sums exact")
        return 0
    if not torch.cuda.is_available():
        print("bench_atomics: needs a CUDA GPU (or --check-only)", file=sys.stderr)
        return 2
    rows = []
    for name, programs, width, row in SHAPES:
        check(programs, width, row, "cuda")
        us = time_us(programs, width, row, a.reps, a.iters)
        rows.append({"shape": name, "programs": programs, "width": width, "row": row, "adds": programs * width,
                     "us_per_launch": us, "device": torch.cuda.get_device_name()})
    if a.json:
        print(json.dumps(rows, indent=1))
    else:
        for r in rows:
            print(f"{r['shape']:22s} {r['programs']:5d} x {r['width']:5d} floats: {r['us_per_launch']:7.2f} us/launch")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
