"""Hardware counters for one decode-attention launch per KV dtype (1M tokens, page 64, default config)
and bf16 at 32K: run under `ncu`, which times and counts only the _decode_kernel launches."""

from __future__ import annotations

import sys

import torch

from floorline.bench.attention import Case, build_inputs
from floorline.kernels.decode_attention import DecodeConfig, decode_attention

cases = [Case(1 << 20, kv_dtype=dt) for dt in ("bf16", "fp8", "fp4")] + [Case(1 << 15)]
for case in cases:
    inp = build_inputs(case, torch.Generator().manual_seed(0))
    cfg = DecodeConfig(block_n=128 if case.kv_dtype != "fp4" else 64, num_warps=8, num_stages=3, ctas_per_sm=2)
    decode_attention(inp.q, inp.ours[0], inp.page_table, inp.seq_lens, max_len=case.context, cfg=cfg)
    torch.cuda.synchronize()
    print(case.label(), cfg, file=sys.stderr)
