"""On 2 GPUs: tensor-parallel decode (model/tp.CommGroup, single-thread mode over floorline.comm's fused
all-reduce + residual + RMSNorm) against the float64 reference on the same weights, every step, eager
steps and then one CUDA graph per GPU; and the bench's per-GPU shard generation at a reduced size."""

from __future__ import annotations

import math

import pytest
import torch

from floorline.model.config import builtin
from floorline.model.reference import ReferenceModel
from floorline.model.tp import CommGroup, RankDecoder
from floorline.model.weights import random_weights

pytestmark = [pytest.mark.gpu, pytest.mark.multigpu]
KV_MATCHED_TOL = 1e-3  # same bound as the single-GPU graph test (test_fast_gpu.py)


def _comms(n: int) -> list:
    from floorline.comm import CommConfig, init_threads

    return init_threads(list(range(n)), CommConfig(max_bytes=1 << 20, oneshot_max_bytes=1 << 20), nccl=False)


def _bf16(t: torch.Tensor) -> torch.Tensor:  # how the fast path's cache stores K and V
    return t.to(torch.bfloat16).to(torch.float64)


@pytest.mark.parametrize("dtype", ["bf16", "fp8"])
def test_tp2_graphs_match_float64(dtype):
    cfg = builtin("small-moe")  # 8 q / 2 kv heads, dense and MoE layers, tied embeddings
    w = random_weights(cfg, dtype=dtype, seed=5)
    B, k = 2, cfg.num_experts_per_tok
    n_moe = sum(cfg.is_moe_layer(i) for i in range(cfg.num_hidden_layers))
    prompts = [[3, 14, 15, 92], [65, 35, 89, 79]]
    comms = _comms(2)
    try:
        ranks = [RankDecoder.from_full(w, r, 2, B, 32, device=f"cuda:{r}") for r in range(2)]
        for r in ranks:
            r.route_log = torch.zeros(n_moe, B, k, dtype=torch.int32, device=r.device)
        group = CommGroup(ranks, comms)
        ref = ReferenceModel(w)
        caches = [ref.new_cache(_bf16) for _ in range(B)]
        errs = []

        def step_and_compare(tokens: list[int]) -> None:
            for r in ranks:
                r.logits.fill_(math.nan)
            group.step(B)
            group.synchronize()
            a, b = ranks[0].logits[:B].cpu(), ranks[1].logits[:B].cpu()
            assert torch.equal(a, b)  # the same sum in the same order on every rank: identical bits
            for s in range(B):
                routes = list(ranks[0].route_log[:, s].unsqueeze(1).cpu().unbind(0))
                want = ref.forward([tokens[s]], caches[s], routes)[-1]
                errs.append(float((a[s].double() - want).norm() / want.norm()))

        for t in range(len(prompts[0])):  # eager steps, one prompt token each
            tok = [p[t] for p in prompts]
            for r in ranks:
                r.tokens[:B] = torch.tensor(tok, device=r.device)
                r.positions[:B] = t
                r.seq_lens[:B] = t + 1
            step_and_compare(tok)
        group.capture(B)  # then one CUDA graph per GPU
        for _ in range(5):
            tok = ranks[0].tokens[:B].tolist()
            step_and_compare(tok)
        assert max(errs) < KV_MATCHED_TOL, errs
        group.release()
    finally:
        for c in comms:
            c.close()


def test_bench_tp2_reduced_depth(tmp_path):
    """The bench path end to end at 2 layers of the 235B shape (fp8 shards generated on each GPU)."""
    from floorline.bench.decode_tp import run_tp
    from floorline.evidence.store import read_json

    res = run_tp("qwen3-235b-a22b", 2, None, 2, (1,), (1024,), "fp8", "bf16", 5, tmp_path, tune=False)
    p = res["points"][0]
    assert p.skipped is None and p.ms > 0 and 0 < p.floor_ms / p.ms < 1.2
    assert p.experts_hit == [8, 8]
    pk = read_json(p.packet)
    assert pk["params"]["tp"] == 2 and pk["baselines"][0]["status"] == "skipped"


def test_bench_tp2_process_mode_reduced_depth(tmp_path):
    """Process mode (one spawned process per GPU) end to end at 2 layers of the 235B shape."""
    from floorline.bench.decode_tp_process import run_tp_process
    from floorline.evidence.store import read_json

    res = run_tp_process("qwen3-235b-a22b", 2, None, 2, (1,), (1024,), "fp8", "bf16", 5, tmp_path)
    p = res["points"][0]
    assert p.ms > 0 and 0 < p.floor_ms / p.ms < 1.2 and p.experts_hit == [8, 8]
    assert read_json(p.packet)["params"]["mode"] == "process"
