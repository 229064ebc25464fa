"""Tensor-parallel decode datapath (model/tp.py) on the CPU: two ranks over sharded weights, the sums
over ranks emulated, against the single-rank fast path on the same weights, step by step."""

from __future__ import annotations

import dataclasses

from floorline.model.config import builtin
from floorline.model.fast import FastDecoder, Sampling
from floorline.model.tp import EmulatedGroup, RankDecoder, feed
from floorline.model.weights import random_weights


def test_two_ranks_match_one():
    cfg = dataclasses.replace(builtin("tiny-moe"), num_key_value_heads=2, num_attention_heads=4).cut(layers=2)  # MoE + dense
    w = random_weights(cfg, dtype="bf16", seed=21)
    prompts = [[5, 9, 11], [7, 1, 3]]
    B, steps = 2, 2
    group = EmulatedGroup([RankDecoder.from_full(w, r, 2, B, 16) for r in range(2)])
    single = FastDecoder(w, B, 16, use_graph=False)

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
