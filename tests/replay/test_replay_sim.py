"""The serving clock on cases small enough to compute by hand, and the closed-form step sum."""

from __future__ import annotations

import random

import numpy as np
import pytest

from floorline.economics.catalog import device
from floorline.replay.model import model_shape
from floorline.replay.sim import ReplayConfig, replay
from floorline.replay.timemodel import TimeModel, steps_time
from floorline.replay.trace import Request


@pytest.fixture
def tm():
    return TimeModel.build(model_shape("llama-3.1-8b"), device("h100"), 1, "bf16", "bf16")


def test_steps_time_equals_the_loop(tm):
    rng = random.Random(7)
    for _ in range(500):
        b = rng.randint(1, 400)
        s0 = rng.choice([rng.randint(0, 5000), rng.randint(0, 4_000_000)])
        k = rng.randint(0, 60)
        loop = sum(tm.decode_step_s(b, s0 + b * j) for j in range(k))
        assert steps_time(tm, b, s0, k) == pytest.approx(loop, rel=1e-12, abs=1e-15)


def test_decode_is_bandwidth_bound_at_batch_one(tm):
    # 8.03e9 params x 2 bytes / 3.35e12 B/s plus the KV of 1,000 tokens
    expected = (8.03e9 * 2 + 1000 * tm.kv_bytes_per_token) / 3.35e12
    assert tm.decode_step_s(1, 1000) == pytest.approx(expected)


def _req(t, n_in, n_out, blocks):
    return Request(t, n_in, n_out, tuple(blocks))


def test_single_request_by_hand(tm):
    r = replay([_req(0.0, 1024, 4, [1, 2])], ReplayConfig(cache_blocks=None, usd_per_gpu_hour=3.6), tm)
    prefill = tm.prefill_s(1024, 0)
    decode = sum(tm.decode_step_s(1, 1025 + j) for j in range(3))  # 3 steps after the first token
    assert r["ttft_ms"]["p50"] == pytest.approx(prefill * 1e3)
    assert r["tpot_ms"]["p50"] == pytest.approx(decode / 3 * 1e3)
    assert r["gpu_seconds"] == pytest.approx(prefill + decode)
    assert r["cost_per_request_usd"] == pytest.approx((prefill + decode) / 3600 * 3.6)
    assert r["energy_per_request_j"] == pytest.approx((prefill + decode) * 700 * 1.2)


def test_second_request_reuses_the_prefix_and_queues(tm):
    reqs = [_req(0.0, 1024, 2, [1, 2]), _req(0.0, 1500, 2, [1, 2, 3])]
    r = replay(reqs, ReplayConfig(cache_blocks=None), tm)
    assert r["prefill_tokens_reused"] == 1024
    assert r["prefill_tokens_computed"] == 1024 + 1500 - 1024
    # the second waits for the first prefill, then runs its own 476 new tokens on 1024 cached ones
    p1, p2 = tm.prefill_s(1024, 0), tm.prefill_s(476, 1024)
    expected = np.percentile([p1 * 1e3, (p1 + p2) * 1e3], 99)  # numpy's linear interpolation, as the report
    assert r["ttft_ms"]["p99"] == pytest.approx(expected, rel=1e-12)


def test_success_column_and_rate(tm):
    reqs = [Request(0.0, 600, 2, (1, 2), True), Request(1.0, 600, 2, (3, 4), False)]
    r = replay(reqs, ReplayConfig(cache_blocks=None), tm)
    assert r["successful_tasks"] == 1 and r["cost_per_successful_task_usd"] == pytest.approx(2 * r["cost_per_request_usd"])
    reqs = [_req(0.0, 600, 2, (1, 2)), _req(1.0, 600, 2, (3, 4))]
    r = replay(reqs, ReplayConfig(cache_blocks=None, success_rate=0.5), tm)
    assert r["cost_per_successful_task_usd"] == pytest.approx(2 * r["cost_per_request_usd"])


def test_round_robin_splits_a_conversation(tm):
    reqs = [_req(float(i), 1024, 2, [1, 2 + i]) for i in range(4)]
    rr = replay(reqs, ReplayConfig(instances=2, routing="round-robin", cache_blocks=None), tm)
    ca = replay(reqs, ReplayConfig(instances=2, routing="cache-aware", cache_blocks=None), tm)
    assert rr["hit_ratio_blocks"] == pytest.approx(2 / 8)  # block 1 hits once per instance after its first
    assert ca["hit_ratio_blocks"] == pytest.approx(3 / 8)  # all follow-ups land where block 1 lives


def test_kv_budget_holds_a_request_until_memory_frees(tm):
    reqs = [_req(0.0, 1000, 3, [1, 2]), _req(0.0, 1000, 3, [3, 4])]
    free = replay(reqs, ReplayConfig(cache_blocks=None), tm)
    tight = replay(reqs, ReplayConfig(cache_blocks=None, kv_budget_tokens=1500), tm)
    p = tm.prefill_s(1000, 0)
    decode1 = sum(tm.decode_step_s(1, 1001 + j) for j in range(2))
    # with room for one sequence only, the second prefill starts when the first has finished decoding
    assert max(free["ttft_ms"]["p99"], 0) < tight["ttft_ms"]["p99"]
    assert np.percentile([p * 1e3, (2 * p + decode1) * 1e3], 99) == pytest.approx(tight["ttft_ms"]["p99"], rel=1e-12)
