"""decode --check's KV-cache option and its greedy-margin record (CPU interpreter, tiny model).

fp16 K/V is the precision option of the error budget (docs/model.md): same bytes as bf16, 3 more
mantissa bits. The K/V-matched number isolates the fast path's arithmetic with the fp16 cache; the
exact-reference number must drop below the bf16 cache's on the same weights and prompts, since
storage rounding is the term fp16 shrinks.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from floorline.model.config import builtin
from floorline.model.run import check
from floorline.model.weights import random_weights

ARITH_TOL = 1e-3  # as tests/model/test_fast.py: fast vs the K/V-matched float64 reference


def _prompts(w, batch, seed=5):
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(0, w.cfg.vocab_size, (5 + 3 * b,), generator=g).tolist() for b in range(batch)]


def test_fp16_cache_is_finer_than_bf16():
    w = random_weights(builtin("tiny-moe"), dtype="bf16", seed=11)
    prompts = _prompts(w, 2)
    bf = check(w, prompts, steps=3, kv_dtype="bf16")
    hf = check(w, prompts, steps=3, kv_dtype="fp16")
    assert hf.kv_dtype == "fp16" and bf.kv_dtype == "bf16"
    assert max(hf.per_step_kv_matched) < ARITH_TOL
    # 8x finer rounding (2^-11 vs 2^-8 relative); the exact-reference error carries it
    assert hf.max_rel_l2 < bf.max_rel_l2 / 3, (hf.max_rel_l2, bf.max_rel_l2)
    assert hf.greedy_match


def test_margins_are_recorded_and_explain_greedy():
    w = random_weights(builtin("tiny-moe"), dtype="bf16", seed=12)
    r = check(w, _prompts(w, 2, seed=6), steps=4)
    assert len(r.margins) == len(r.margin_errors) == 5
    assert all(m >= 0 for m in r.margins) and all(e >= 0 for e in r.margin_errors)
    # a step keeps its greedy token exactly when the fast path moved the top-2 difference by less
    # than the margin (ties aside); the record must say the same as the token comparison
    for s, (m, e) in enumerate(zip(r.margins, r.margin_errors, strict=True)):
        if e < m:
            assert s not in r.mismatches
    assert r.greedy_match == (not r.mismatches)


def test_kv_dtype_cli_and_bad_value():
    run = [sys.executable, "-m", "floorline", "decode", "--check", "--model", "tiny-moe", "--device", "cpu",
           "--steps", "2", "--tolerance", "0.02", "--no-evidence", "--json"]
    r = subprocess.run([*run, "--kv-dtype", "bf16,fp16"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    runs = json.loads(r.stdout)["runs"]  # both datapaths on the same weights and prompts
    assert [o["kv_dtype"] for o in runs] == ["bf16", "fp16"]
    assert all(len(o["per_step_margin"]) == 3 and o["min_margin"] > 0 for o in runs)
    bad = subprocess.run([*run, "--kv-dtype", "fp32"], capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1 and "--kv-dtype" in bad.stderr


@pytest.mark.gpu
def test_fp16_cache_on_the_gpu():
    """The CUDA-graph decoder with an fp16 cache (tensor-core hi/lo pairs in fp16) vs float64."""
    w = random_weights(builtin("small-moe"), dtype="bf16", device="cuda", seed=13)
    prompts = _prompts(w, 3)
    bf = check(w, prompts, steps=8, kv_dtype="bf16")
    hf = check(w, prompts, steps=8, kv_dtype="fp16")
    assert max(hf.per_step_kv_matched) < ARITH_TOL
    # /2, not /3: the GPU rounds bf16 to nearest (the interpreter truncates), and the arithmetic
    # remainder (~2e-4 here) is a larger share
    assert hf.max_rel_l2 < bf.max_rel_l2 / 2, (hf.max_rel_l2, bf.max_rel_l2)
