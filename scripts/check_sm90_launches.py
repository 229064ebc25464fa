"""Compile, for sm_90 and without a GPU, every Triton launch a CPU test run recorded (see
floorline.gpu.sm90_launches): names each launch the GPU compiler would refuse or that needs more shared
memory than sm_90 has. Exit 1 if any.

    FLOORLINE_SM90_RECORD=/tmp/launches.jsonl python3 -m pytest tests/kernels tests/model
    PYTHONPATH=/tmp/tri36 python3 scripts/check_sm90_launches.py /tmp/launches.jsonl [--json] [--jobs N]

Use the device image's Triton (3.6; scripts/check_sm90_builds.py says how to get it): shared memory and
some refusals differ between Triton versions.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from concurrent.futures import ProcessPoolExecutor


def _check(line: str) -> dict:
    from floorline.gpu.sm90_launches import check_launch

    rec = json.loads(line)
    return {"kernel": rec["kernel"], "launch": rec, "error": check_launch(rec)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("records", help="JSON lines written by a FLOORLINE_SM90_RECORD test run")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--jobs", type=int, default=2)
    args = ap.parse_args()
    if os.environ.get("TRITON_INTERPRET") == "1":
        print("check_sm90_launches: unset TRITON_INTERPRET (the compiles need the real kernels)", file=sys.stderr)
        return 2
    try:
        with open(args.records) as f:
            lines = sorted({ln.strip() for ln in f if ln.strip()})
    except OSError as e:
        print(f"check_sm90_launches: records: cannot read {args.records}: {e.strerror}", file=sys.stderr)
        return 2
    import triton

    with ProcessPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        rows = list(pool.map(_check, lines, chunksize=4))
    bad = [r for r in rows if r["error"]]
    kernels = sorted({r["kernel"] for r in rows})
    if args.json:
        print(json.dumps({"triton": triton.__version__, "launches": len(rows), "kernels": kernels, "failed": bad}))
    else:
        print(f"Triton {triton.__version__}: {len(rows)} distinct launches of {len(kernels)} kernels, "
              f"{len(bad)} refused for sm_90")
        for r in bad:
            kw = {k: v.get("value") for k, v in r["launch"]["kwargs"].items()}
            print(f"  {r['kernel']} {kw}: {r['error']}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
