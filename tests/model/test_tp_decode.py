"""Tensor-parallel decode datapath (model/tp.py) on the CPU: two ranks over sharded weights, the sums
over ranks emulated, against the single-rank fast path on the same weights, step by step."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from floorline.model.config import builtin
from floorline.model.fast import FastDecoder, LaunchConfigs, Sampling
from floorline.model.tp import EmulatedGroup, RankDecoder, feed
from floorline.model.weights import random_weights


@pytest.mark.parametrize("B", [1, 2])  # 1: the fused batch-1 rank step (RankDecoder._layers_b1)
def test_two_ranks_match_one(B):
    cfg = dataclasses.replace(builtin("tiny-moe"), num_key_value_heads=2, num_attention_heads=4).cut(layers=2)  # MoE + dense
    w = random_weights(cfg, dtype="bf16", seed=21)
    prompts = [[5, 9, 11], [7, 1, 3]][:B]
    steps = 2
    group = EmulatedGroup([RankDecoder.from_full(w, r, 2, B, 16) for r in range(2)])
    single = FastDecoder(w, B, 16, kv_dtype="bf16", use_graph=False)  # the ranks keep a bf16 cache (model/tp.py)

    class One:  # the single-rank decoder driven the same way (token by token)
        ranks = [single]

        @staticmethod
        def step(b: int) -> None:
            single.step(b, Sampling())

    feed(group, prompts)
    single.lengths = [0] * B
    feed(One, prompts)
    for _ in range(steps):
        assert group.ranks[0].tokens[:B].tolist() == single.tokens[:B].tolist()
        group.step(B)
        single.step(B, Sampling())
        for r in group.ranks:  # every rank holds the full logits
            err = float((r.logits[:B].double() - single.logits[:B].double()).norm() / single.logits[:B].double().norm())
            assert err < 1e-4


@pytest.mark.parametrize("dtype", ["bf16", "fp8"])
def test_fused_b1_rank_step_matches_general_step(dtype):
    """The batch-1 rank step (router + top-k in one launch, expert rows added into the partial by
    atomics after a memset) against the general step (k stored rows, torch.sum) on the same shards,
    with the partial poisoned before each step so a missed memset or a lost row shows."""
    cfg = dataclasses.replace(builtin("tiny-moe"), num_key_value_heads=2, num_attention_heads=4,
                              hidden_size=72).cut(layers=2)
    w = random_weights(cfg, dtype=dtype, seed=5)
    runs = {}
    for fused in (True, False):
        launch = dataclasses.replace(LaunchConfigs(), fused_b1=fused)
        group = EmulatedGroup([RankDecoder.from_full(w, r, 2, 1, 16, launch) for r in range(2)])
        feed(group, [[4, 13, 2]])
        logits = []
        for _ in range(3):
            for r in group.ranks:
                r.partial.fill_(float("nan"))
                r.logits.fill_(float("nan"))
            group.step(1)
            logits.append(group.ranks[0].logits[:1].double().clone())
            assert torch.equal(group.ranks[0].logits[:1], group.ranks[1].logits[:1])
        runs[fused] = logits
    for a, b in zip(runs[True], runs[False], strict=True):
        assert torch.isfinite(a).all()
        assert float((a - b).norm() / b.norm()) < 1e-5


class _SumComm:
    """Stands in for a floorline.comm Communicator on the CPU: reads every rank's partial directly
    (CommGroup's lockstep guarantees all of them are written before any rank's all-reduce)."""

    def __init__(self, ranks: list, calls: list) -> None:
        self.ranks, self.calls = ranks, calls

    def all_reduce_residual_rmsnorm(self, x, residual, weight, eps, out=None, residual_out=None):
        from floorline.kernels.rmsnorm import add_rmsnorm

        B = x.shape[0]
        assert residual_out.data_ptr() == residual.data_ptr()  # in place, as the decoder wants
        self.calls.append(B)
        add_rmsnorm(residual, weight, eps, out, sum(r.partial[:B] for r in self.ranks))
        return out, residual

    def synchronize(self) -> None:
        pass


def test_comm_group_lockstep_matches_emulated():
    import torch

    from floorline.model.tp import CommGroup

    cfg = dataclasses.replace(builtin("tiny-moe"), num_key_value_heads=2, num_attention_heads=4).cut(layers=2)
    w = random_weights(cfg, dtype="bf16", seed=8)
    B = 2
    a = EmulatedGroup([RankDecoder.from_full(w, r, 2, B, 16) for r in range(2)])
    ranks = [RankDecoder.from_full(w, r, 2, B, 16) for r in range(2)]
    calls: list = []
    b = CommGroup(ranks, [_SumComm(ranks, calls) for _ in ranks])
    feed(a, [[5, 9], [7, 1]])
    feed(b, [[5, 9], [7, 1]])
    b.step(B)
    a.step(B)
    assert len(calls) == 3 * 2 * cfg.num_hidden_layers * 2  # 3 steps x 2 sums per layer x 2 ranks
    for x, y in zip(a.ranks, b.ranks, strict=True):
        assert torch.equal(x.logits[:B], y.logits[:B])
        assert torch.equal(x.tokens[:B], y.tokens[:B])


def test_decode_check_tp4_on_cpu_matches_float64():
    """decode --check --tp's engine on the CPU: 4 ranks over 2 kv heads (replicated), sums emulated."""
    from floorline.model.tp_check import tp_check

    w = random_weights(builtin("tiny-moe").cut(layers=2), dtype="bf16", seed=13)
    r = tp_check(w, [[3, 1], [8, 2]], steps=2, tp=4, device="cpu")
    assert r.ranks_identical and r.greedy_match
    assert len(r.per_step) == 3 and max(r.per_step_kv_matched) < 1e-5
