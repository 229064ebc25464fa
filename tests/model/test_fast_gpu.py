"""On the GPU: the CUDA-graph decode step against float64 (bf16 and FP8 weights, batches with their
own lengths), sampling through the graph, and transformers built on our very tensors."""

from __future__ import annotations

import pytest
import torch

from floorline.model.config import builtin
from floorline.model.run import check, generate
from floorline.model.weights import random_weights

pytestmark = pytest.mark.gpu


# fp16 K/V is the default cache (model.fast.DEFAULT_KV_DTYPE); one case keeps bf16 K/V on the GPU
@pytest.mark.parametrize("dtype,batch,kv", [("bf16", 1, "fp16"), ("bf16", 5, "fp16"), ("bf16", 5, "bf16"),
                                            ("fp8", 3, "fp16"), ("bf16", 64, "fp16")])
def test_graph_decode_matches_float64(dtype, batch, kv):
    w = random_weights(builtin("small-moe"), dtype=dtype, device="cuda", seed=11)
    g = torch.Generator().manual_seed(batch)
    prompts = [torch.randint(0, w.cfg.vocab_size, (3 + b % 7,), generator=g).tolist() for b in range(batch)]
    r = check(w, prompts, steps=6 if batch < 64 else 3, kv_dtype=kv)
    assert r.kv_dtype == kv
    assert max(r.per_step_kv_matched) < 1e-3  # see test_fast.py ARITH_TOL
    assert r.max_rel_l2 < 1e-2
    assert r.greedy_match


def test_sampled_generation_runs_in_the_graph():
    w = random_weights(builtin("small-moe"), dtype="bf16", device="cuda", seed=1)
    a = generate(w, [[1, 2, 3], [4, 5]], 8, greedy=False, temperature=0.8, top_p=0.9, seed=5)
    b = generate(w, [[1, 2, 3], [4, 5]], 8, greedy=False, temperature=0.8, top_p=0.9, seed=5)
    assert a.tokens == b.tokens and a.path.startswith("fast (CUDA graph)")
    assert all(0 <= t < w.cfg.vocab_size for row in a.tokens for t in row)


def test_transformers_on_shared_weights_matches_reference():
    from floorline.bench.decode import hf_model
    from floorline.model.reference import ReferenceModel

    w = random_weights(builtin("tiny-moe"), dtype="bf16", device="cuda", seed=3)
    model = hf_model(w, "eager")
    tokens = torch.tensor([[3, 1, 4, 1, 5, 9]], device="cuda")
    with torch.no_grad():
        theirs = model(tokens).logits[0, -1].double()
    ours = ReferenceModel(w).forward(tokens[0], ReferenceModel(w).new_cache())[-1]
    assert float((theirs - ours).norm() / ours.norm()) < 3e-2  # transformers runs bf16 activations


@pytest.mark.parametrize("fused,pdl", [(True, False), (False, False)])
def test_batch1_step_variants_match_float64(fused, pdl):
    """The default batch-1 step (fused, PDL) runs in test_graph_decode_matches_float64; these are the
    bench's same-run A/B variants."""
    from floorline.model.fast import LaunchConfigs

    w = random_weights(builtin("small-moe"), dtype="bf16", device="cuda", seed=12)
    r = check(w, [[1, 2, 3, 4, 5]], steps=6, launch=LaunchConfigs(fused_b1=fused, pdl=pdl))
    assert max(r.per_step_kv_matched) < 1e-3 and r.max_rel_l2 < 1e-2 and r.greedy_match


def test_pdl_chain_in_a_graph():
    from floorline.model.tune import pdl_works

    if torch.cuda.get_device_capability()[0] < 9:
        pytest.skip("programmatic dependent launch needs sm_90+")
    assert pdl_works(torch.device("cuda"), prefetch=False) == (True, "ok")
    assert pdl_works(torch.device("cuda")) == (True, "ok")


@pytest.mark.parametrize("pdl_experts", [True, False])
def test_batch1_session5_options_match_float64(pdl_experts):
    """On the GPU, with PDL: the router split over K, double-buffered expert GEMVs (the defaults now),
    the attention's in-kernel split merge, and the expert GEMVs launched with or without PDL."""
    from dataclasses import replace

    from floorline.kernels.decode_attention import DecodeConfig
    from floorline.model.fast import LaunchConfigs

    w = random_weights(builtin("small-moe"), dtype="bf16", device="cuda", seed=13)
    from floorline.kernels.gemv import GemvConfig

    ef = dict(gate_up=GemvConfig(block_n=16, block_k=256, double_buffer=True, evict_first=True),
              down=GemvConfig(block_n=16, block_k=128, double_buffer=True, evict_first=True))
    for launch in (LaunchConfigs(pdl_experts=pdl_experts), LaunchConfigs(pdl_experts=pdl_experts, expert_down_prefetch=False),
                   LaunchConfigs(pdl_experts=pdl_experts, **ef),
                   LaunchConfigs(pdl_experts=pdl_experts, attention=replace(DecodeConfig(), variant="v2",
                                                                            fuse_combine=True))):
        r = check(w, [[1, 2, 3, 4, 5]], steps=6, launch=launch)
        assert max(r.per_step_kv_matched) < 1e-3 and r.max_rel_l2 < 1e-2 and r.greedy_match


@pytest.mark.parametrize("mode,warps,block", [("l2", 4, 64), ("evict-last", 4, 64), ("off", 8, 64), ("off", 8, 128)])
def test_batch1_session9_options_match_float64(mode, warps, block):
    """Sessions 9-10's step-choice flips in the default PDL step: the attention's programs pull the next
    layer's qkv weight into L2 (LaunchConfigs.prefetch_next), the attention at 8 warps, its one tile at 128
    tokens; float64 and greedy hold."""
    from floorline.kernels.decode_attention import DecodeConfig
    from floorline.model.fast import LaunchConfigs

    w = random_weights(builtin("small-moe"), dtype="bf16", device="cuda", seed=14)
    launch = LaunchConfigs(prefetch_next=mode, attention=DecodeConfig(one_tile=True, num_warps=warps, block_n=block))
    r = check(w, [[1, 2, 3, 4, 5]], steps=6, launch=launch)
    assert max(r.per_step_kv_matched) < 1e-3 and r.max_rel_l2 < 1e-2 and r.greedy_match
