"""sm_90 builds compiled on the CPU (no GPU): the checker must refuse what the device refused in
session 4 (an FP8 wgmma over 16 tokens; 274 KB of shared memory) and pass the builds that replaced them.
The tests run with TRITON_INTERPRET=1 (conftest), which turns every kernel into an interpreted function,
so the compiles run in a child process without it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import asdict

import pytest

from floorline.kernels.decode_attention import DecodeConfig
from floorline.kernels.decode_attention_aot import SM90_SHARED_BYTES, BuildShape, compile_sm90
from tests.kernels.test_decode_attention import gpu_builds

_CHILD = """
import json, sys
from floorline.kernels.decode_attention import DecodeConfig
from floorline.kernels.decode_attention_aot import BuildShape, check_build
out = []
for shape, cfg, block_n in json.loads(sys.stdin.read()):
    c = DecodeConfig(**cfg)
    if block_n:  # a block size DecodeConfig refuses up front (the interpreter used to run it)
        object.__setattr__(c, "block_n", block_n)
    out.append(check_build(BuildShape(**shape), c))
print(json.dumps(out))
"""


def check_builds(items: list[tuple[BuildShape, DecodeConfig, int]]) -> list[str | None]:
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    payload = json.dumps([(asdict(s), asdict(c), n) for s, c, n in items])
    res = subprocess.run([sys.executable, "-c", _CHILD], input=payload, capture_output=True, text=True,
                         env=env, timeout=600, check=True)
    return json.loads(res.stdout.strip().splitlines()[-1])


def test_interpreted_kernels_are_refused_with_the_reason():
    with pytest.raises(RuntimeError, match="TRITON_INTERPRET"):
        compile_sm90(BuildShape("bf16"), DecodeConfig())


def test_the_two_session4_device_failures_are_found_and_their_fixes_pass():
    mma = DecodeConfig(block_n=32, num_warps=4, num_stages=1, variant="v2", fp8_mma=True)
    big = DecodeConfig(block_n=128, num_warps=8, num_stages=2, variant="v2")
    errs = check_builds([(BuildShape("fp8", head_dim=64, group=1, page_size=16), mma, 16),
                         (BuildShape("bf16", head_dim=256, group=16), big, 0),
                         (BuildShape("fp8", head_dim=64, group=1, page_size=16), mma, 0),
                         (BuildShape("bf16", head_dim=256, group=16), DecodeConfig(**{**asdict(big), "num_stages": 1}), 0)])
    assert errs[0] is not None and "K >= 32" in errs[0]
    assert errs[1] is not None and "shared memory" in errs[1] and str(SM90_SHARED_BYTES) in errs[1]
    assert errs[2:] == [None, None]


def test_gpu_sweep_edge_builds_compile_for_sm90():
    """The GPU sweep's largest tiles (d=256 x 128 tokens) and its FP8 MMA page-16 builds; the whole list
    (and the bench's tuning spaces) is scripts/check_sm90_builds.py."""
    edge = [b for b in gpu_builds() if (b[1] == 256 and b[4].block_n == 128) or (b[3] == 16 and b[4].fp8_mma)]
    assert len(edge) >= 10
    errs = check_builds([(BuildShape(kv, d, g, page), cfg, 0) for kv, d, g, page, cfg in edge])
    assert [(b[:4], e) for b, e in zip(edge, errs, strict=True) if e] == []
