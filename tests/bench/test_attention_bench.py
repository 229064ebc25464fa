"""bench attention on CPU: the sweep covers what the issue asks, bad input is one line + exit 2, and the
accuracy report (kernel in the loop, interpreter) ranks the formats as expected."""

from __future__ import annotations

import subprocess
import sys

import pytest

from floorline.bench.attention import Case, sweep
from floorline.kernels.kv_cache import QUANT_REL_L2, bytes_per_token_head


def test_full_sweep_covers_the_issue():
    cases = sweep(quick=False)
    assert {c.context for c in cases if c.batch == 1} >= {4096, 32768, 131072, 1048576}
    assert {c.batch for c in cases} >= {1, 64}
    assert {c.kv_dtype for c in cases} == {"bf16", "fp8", "fp4"}
    assert {c.page_size for c in cases} >= {0, 16, 64, 256}
    assert all((c.q_heads, c.kv_heads, c.head_dim) == (64, 4, 128) for c in cases)


def test_bytes_include_scales():
    assert bytes_per_token_head("bf16", 128) == 256
    assert bytes_per_token_head("fp8", 128) == 132
    assert bytes_per_token_head("fp4", 128) == 68  # 64 packed bytes + 4 E8M0 scales
    assert Case(1024, kv_dtype="fp4").kv_bytes() == 2 * 1024 * 4 * 68


def test_graph_mode_for_short_calls_only():
    assert Case(32 * 1024).graph and Case(128 * 1024).graph
    assert not Case(1024 * 1024).graph and not Case(32 * 1024, batch=64).graph


def test_accuracy_report_kernel_in_the_loop(device):
    from floorline.bench.accuracy import accuracy_report

    acc = accuracy_report(device, tokens=48 if device == "cpu" else 2048)
    e = acc.rel_l2
    assert e["bf16"] < e["fp8"] < e["fp4"], e
    for k, v in e.items():
        assert v < QUANT_REL_L2[k], (k, v)


def test_variant_families_tune_their_own_kernels():
    from floorline.bench.attention import VARIANT_FAMILIES, family_configs

    assert VARIANT_FAMILIES == ("v1", "v2", "v2-fp8mma", "v1-align", "v2-fp8mma-align", "v1-prefetch")
    pf = family_configs("v1-prefetch", Case(32 * 1024), quick=False)
    assert pf and all(c.prefetch and c.variant == "v1" and c.num_stages == 1 for c in pf)
    assert family_configs("v1-prefetch", Case(1024 * 1024, kv_dtype="fp8"), quick=False) == []
    v1 = family_configs("v1", Case(32 * 1024), quick=False)
    assert v1 and all(c.variant == "v1" for c in v1)
    v2 = family_configs("v2", Case(32 * 1024), quick=False)
    assert all(c.variant == "v2" and not c.fp8_mma for c in v2)
    assert any(c.fuse_combine for c in v2) and any(c.min_split_tokens for c in v2)  # short graph case
    assert not any(c.fuse_combine for c in family_configs("v2", Case(1024 * 1024), quick=False))
    assert family_configs("v2-fp8mma", Case(1024 * 1024), quick=False) == []  # bf16: nothing to do
    mma = family_configs("v2-fp8mma", Case(1024 * 1024, kv_dtype="fp8"), quick=False)
    assert mma and all(c.fp8_mma for c in mma)
    # the -align families: fp8 only, every config hinted; v2-fp8mma-align also tries the register cap
    for fam in ("v1-align", "v2-fp8mma-align"):
        assert family_configs(fam, Case(1024 * 1024), quick=False) == []
        assert family_configs(fam, Case(1024 * 1024, kv_dtype="fp4"), quick=False) == []
        cfgs = family_configs(fam, Case(1024 * 1024, kv_dtype="fp8"), quick=False)
        assert cfgs and all(c.align_hint for c in cfgs)
    capped = family_configs("v2-fp8mma-align", Case(1024 * 1024, kv_dtype="fp8"), quick=False)
    assert all(c.fp8_mma and c.variant == "v2" for c in capped) and any(c.maxnreg == 128 for c in capped)
    v1a = family_configs("v1-align", Case(32 * 1024, kv_dtype="fp8"), quick=False)
    assert all(c.variant == "v1" and not c.fp8_mma for c in v1a) and {0, 128, 168} <= {c.maxnreg for c in v1a}


@pytest.mark.parametrize("args,field", [(["--kv-dtype", "int9"], "--kv-dtype"), (["--context", "0"], "--context"),
                                        (["--variant", "v9"], "--variant")])
def test_bad_input_is_one_line_exit_2(args, field):
    p = subprocess.run([sys.executable, "-m", "floorline", "bench", "attention", *args], capture_output=True, text=True)
    assert p.returncode == 2
    assert field in p.stderr + p.stdout
    assert "Traceback" not in p.stderr
