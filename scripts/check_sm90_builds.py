"""Compile, for sm_90 and without a GPU, every decode-attention build the device will run: the GPU
tests' build sweeps (tests/kernels/test_decode_attention.py: gpu_builds) and the tuning spaces of
`bench attention` over its full sweep. Exits 1 and names each build that the compiler refuses or that
needs more shared memory than sm_90 has, so a device call is not spent finding out.

Run it before a device call, with the device image's Triton (3.6) first on the path; shared memory
differs between Triton versions:
    pip download --no-deps triton==3.6.0 --python-version 3.11 --only-binary=:all: \\
        --platform manylinux_2_27_x86_64 -d /tmp/tri36dl
    pip install --no-deps --target /tmp/tri36 /tmp/tri36dl/triton-3.6.0-*.whl
    PYTHONPATH=/tmp/tri36 python3 scripts/check_sm90_builds.py [--json] [--jobs N]
"""

from __future__ import annotations

import argparse
import json
import sys
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the tests package holds the GPU sweeps' build lists


def bench_builds() -> list[tuple[str, int, int, int, object]]:
    from floorline.bench.attention import VARIANT_FAMILIES, family_configs, sweep

    out = []
    for case in sweep(quick=False):
        for family in VARIANT_FAMILIES:
            for cfg in family_configs(family, case, quick=False):
                out.append((case.kv_dtype, case.head_dim, case.q_heads // case.kv_heads,
                            case.page_size or case.context, cfg))
    return out


def _key(build: tuple) -> tuple:
    """Split count, CTAs per SM and split lengths change the grid, not the compiled kernel."""
    kv_dtype, d, g, page, cfg = build
    return (kv_dtype, d, g, page, replace(cfg, num_splits=0, ctas_per_sm=4, min_split_tokens=0))


def _check(build: tuple) -> dict:
    from floorline.kernels.decode_attention_aot import BuildShape, check_build

    kv_dtype, d, g, page, cfg = build
    shape = BuildShape(kv_dtype, d, g, page)
    return {"shape": shape.label(), "config": repr(cfg), "error": check_build(shape, cfg)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--jobs", type=int, default=2)
    args = ap.parse_args()
    import triton

    from tests.kernels.test_decode_attention import gpu_builds

    builds = {_key(b): b for b in gpu_builds() + bench_builds()}
    with ProcessPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        rows = list(pool.map(_check, builds.values()))
    bad = [r for r in rows if r["error"]]
    if args.json:
        print(json.dumps({"triton": triton.__version__, "builds": len(rows), "failed": bad}, indent=1))
    else:
        print(f"Triton {triton.__version__}: {len(rows)} distinct sm_90 builds, {len(bad)} refused")
        for r in bad:
            print(f"  {r['shape']} {r['config']}: {r['error']}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
