"""Hardware counters for one decode-attention launch per KV dtype (1M tokens, page 64, default config)
and bf16 at 32K: run under `ncu`, which times and counts only the _decode_kernel launches.
NCU_VARIANTS="v1 v2 v2-fp8mma" (default "v1") launches each kernel family's build of the same case
(ncu's kernel regex `_decode_kernel` matches v1's and v2's kernels)."""

from __future__ import annotations

import os
import sys
from dataclasses import replace

import torch

from floorline.bench.attention import Case, build_inputs
from floorline.kernels.decode_attention import DecodeConfig, decode_attention

FAMILY = {"v1": {}, "v2": {"variant": "v2"}, "v2-fp8mma": {"variant": "v2", "fp8_mma": True},
          "v1-align": {"align_hint": True, "maxnreg": 128},
          "v2-fp8mma-align": {"variant": "v2", "fp8_mma": True, "align_hint": True, "maxnreg": 128},
          "v1-prefetch": {"prefetch": True, "block_n": 64, "num_warps": 4, "num_stages": 1}}
families = os.environ.get("NCU_VARIANTS", "v1").split()
# NCU_DTYPES="fp8" limits the 1M cases (bf16 32K always runs, v1 family only for non-v1 names below)
dtypes = os.environ.get("NCU_DTYPES", "bf16 fp8 fp4").split()
cases = [Case(1 << 20, kv_dtype=dt) for dt in dtypes] + [Case(1 << 15)]
for case in cases:
    inp = build_inputs(case, torch.Generator().manual_seed(0))
    base = DecodeConfig(block_n=128 if case.kv_dtype != "fp4" else 64, num_warps=8, num_stages=3, ctas_per_sm=2)
    for fam in families:
        if fam.startswith("v2-fp8mma") and case.kv_dtype != "fp8":
            continue
        if fam.endswith("-align") and case.kv_dtype != "fp8":
            continue
        if fam == "v1-prefetch" and case.kv_dtype != "bf16":
            continue
        cfg = replace(base, **FAMILY[fam])
        decode_attention(inp.q, inp.ours[0], inp.page_table, inp.seq_lens, max_len=case.context, cfg=cfg)
        torch.cuda.synchronize()
        print(case.label(), fam, cfg, file=sys.stderr)
    del inp
