"""The fast decoder (our Triton kernels; the CPU interpreter here, the GPU under -m gpu) against the
float64 reference, step by step, on the same weights.

Two numbers per step: vs the exact float64 reference, and vs the reference that stores K/V rounded
as the bf16 cache does. The second isolates the fast path's arithmetic, so it is held tight; the
first also carries the cache's storage rounding (and, in the CPU interpreter, Triton's fp32->bf16
conversion truncates rather than rounds, which roughly doubles that part).
"""

from __future__ import annotations

import pytest
import torch

from floorline.model.config import builtin
from floorline.model.run import check, generate
from floorline.model.weights import random_weights

# fast vs kv-matched float64 reference. Not 1e-6: a key whose fp32 and float64 values straddle a
# bf16 rounding boundary is stored one ulp apart (a few per thousand elements), ~1e-4 on the logits.
ARITH_TOL = {"bf16": 1e-3, "fp8": 1e-3}
EXACT_TOL = 2e-2  # fast vs exact float64 (KV storage rounding included), a sanity bound at 3-4 layers


@pytest.mark.parametrize("name,dtype,batch", [("tiny-moe", "bf16", 2), ("tiny-moe", "fp8", 1), ("small-moe", "bf16", 1)])
def test_fast_path_matches_float64(name, dtype, batch):
    w = random_weights(builtin(name), dtype=dtype, seed=7)
    g = torch.Generator().manual_seed(3)
    prompts = [torch.randint(0, w.cfg.vocab_size, (4 + 3 * b,), generator=g).tolist() for b in range(batch)]
    r = check(w, prompts, steps=3)
    assert max(r.per_step_kv_matched) < ARITH_TOL[dtype]
    assert r.max_rel_l2 < EXACT_TOL
    assert r.greedy_match


def test_split_k_launch_matches_float64():
    """o-proj and expert-down split over K (partials summed by add_rmsnorm), router as GEMV + top-k."""
    from floorline.kernels.gemv import GemvConfig
    from floorline.model.fast import LaunchConfigs

    launch = LaunchConfigs(o=GemvConfig(block_n=16, block_k=64, split_k=3), down=GemvConfig(block_n=16, block_k=32, split_k=2))
    w = random_weights(builtin("tiny-moe"), dtype="bf16", seed=8)
    r = check(w, [[3, 4, 5, 6], [7, 8]], steps=2, launch=launch)
    assert max(r.per_step_kv_matched) < ARITH_TOL["bf16"] and r.max_rel_l2 < EXACT_TOL


def test_generate_fast_equals_reference_tokens():
    cfg = builtin("tiny-moe")
    fast = generate(random_weights(cfg, dtype="bf16", seed=2), [[5, 9, 11]], 4)
    ref = generate(random_weights(cfg, dtype="bf16", seed=2).__class__(
        **{**random_weights(cfg, dtype="bf16", seed=2).__dict__, "dtype": "float64"}), [[5, 9, 11]], 4)
    assert fast.tokens == ref.tokens


@pytest.mark.parametrize("fused,one_launch", [(True, True), (True, False), (False, False)])
def test_batch1_fused_and_unfused_steps_match_float64(fused, one_launch):
    """Batch 1 runs the fused step (RMSNorm inside the GEMVs, o-proj / experts added into the residual
    with atomics, split-K slices included; RoPE inside attention and router + top-k in one launch unless
    turned off) unless LaunchConfigs(fused_b1=False) asks for the 11-kernel one."""
    from floorline.kernels.gemv import GemvConfig
    from floorline.model.fast import LaunchConfigs

    launch = LaunchConfigs(o=GemvConfig(block_n=16, block_k=64, split_k=3), down=GemvConfig(block_n=16, block_k=32, split_k=2),
                           router=GemvConfig(block_n=4, block_k=64), fused_b1=fused, attn_rope=one_launch,
                           router_one_launch=one_launch)
    w = random_weights(builtin("tiny-moe"), dtype="bf16", seed=9)
    r = check(w, [[3, 4, 5, 6, 7]], steps=3, launch=launch)
    assert max(r.per_step_kv_matched) < ARITH_TOL["bf16"] and r.max_rel_l2 < EXACT_TOL and r.greedy_match


# one_tile: the precise attention's in-kernel merge with one-block splits (DecodeConfig.one_tile, on in
# LaunchConfigs since session 8); the 40-token prompt makes 3 splits of one 16-token block
@pytest.mark.parametrize("batch,one_tile", [(1, False), (2, False), (1, True)])
def test_session5_launch_options_match_float64(batch, one_tile):
    """The options the batch-1 tuner can now pick, all at once: router_b1 split over K (partials summed
    in the last program; the batch > 1 router runs it unsplit), double-buffered expert GEMV K loops
    (odd tile counts), and the precise attention merging its splits in-kernel (v2 + fuse_combine)."""
    from floorline.kernels.decode_attention import DecodeConfig
    from floorline.kernels.gemv import GemvConfig
    from floorline.model.fast import LaunchConfigs

    launch = LaunchConfigs(router=GemvConfig(block_n=2, block_k=32, num_warps=1, split_k=3),
                           gate_up=GemvConfig(block_n=16, block_k=16, double_buffer=True),
                           down=GemvConfig(block_n=16, block_k=16, double_buffer=True),
                           attention=DecodeConfig(block_n=16, num_splits=3, variant="v2", fuse_combine=True,
                                                  one_tile=one_tile))
    w = random_weights(builtin("tiny-moe"), dtype="bf16", seed=11)
    prompts = [list(range(3, 43)) if one_tile else [3, 4, 5, 6, 7], [9, 2]][:batch]
    r = check(w, prompts, steps=3, launch=launch)
    assert max(r.per_step_kv_matched) < ARITH_TOL["bf16"] and r.max_rel_l2 < EXACT_TOL and r.greedy_match


def test_session8_launch_options_match_float64():
    """The session 8 switches the step choice can flip, all at once on the batch-1 fused step: one-tile
    attention (16-token splits of one 16-token block), and weight tiles loaded first (before the PDL
    wait on a GPU) in the one-tile qkv / o / LM head GEMVs, the router's slices and expert-down."""
    import triton

    from floorline.kernels.decode_attention import DecodeConfig
    from floorline.kernels.gemv import GemvConfig
    from floorline.model.fast import LaunchConfigs

    w = random_weights(builtin("tiny-moe"), dtype="bf16", seed=12)
    H, inter = w.cfg.hidden_size, w.cfg.moe_intermediate_size
    p2 = triton.next_power_of_2

    def one(n: int, k: int) -> GemvConfig:  # one tile over all of K
        return GemvConfig(block_n=n, block_k=p2(k), preload=True)

    launch = LaunchConfigs(qkv=one(16, H), o=one(8, w.cfg.q_size), lm_head=one(16, H),
                           router=GemvConfig(block_n=2, block_k=p2(H // 2), num_warps=1, split_k=2, preload=True),
                           down=one(16, inter), attention=DecodeConfig(block_n=16, num_splits=4, one_tile=True),
                           prefetch_next="evict-last")  # a no-op without PDL; here its plumbing runs
    r = check(w, [[3, 4, 5, 6, 7, 8]], steps=3, launch=launch)
    assert max(r.per_step_kv_matched) < ARITH_TOL["bf16"] and r.max_rel_l2 < EXACT_TOL and r.greedy_match
