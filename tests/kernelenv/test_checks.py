"""Units of the judge that the candidate suites cannot reach directly: the timing cross-check, the reward,
the wire format's refusals, the error metric."""

from __future__ import annotations

import math
import struct

import pytest
import torch

from floorline.kernelenv import wire
from floorline.kernelenv.checks import _low_precision_grid, _sentinel_fraction, timing_consistency
from floorline.kernelenv.reward import reward
from floorline.kernelenv.task import normalised_error


def _reply(walls, samples=None):
    return {"walls_us": walls, "samples_us": samples or []}


def test_timing_cross_check_accepts_honest_cpu_numbers():
    walls = [10_000.0] * 10  # 10 ms per iteration, 0.1 s in all
    assert timing_consistency("cpu", _reply(walls), wall_s=0.13, cal={}, cal_wall_s=0.01, iters=10) is None


def test_timing_cross_check_catches_under_reporting():
    walls = [1.0] * 10  # the worker claims 10 us in all, but the harness waited 5 s
    msg = timing_consistency("cpu", _reply(walls), wall_s=5.0, cal={}, cal_wall_s=0.01, iters=10)
    assert msg and "under-reported" in msg


def test_timing_cross_check_catches_impossible_claims():
    assert "wall time inside" in timing_consistency("cpu", _reply([1e6] * 10), wall_s=1.0, cal={}, cal_wall_s=0.0,
                                                     iters=10)
    bad = timing_consistency("cuda", _reply([10.0] * 4, [500.0] * 4), wall_s=0.01, cal={}, cal_wall_s=0.0, iters=4)
    assert "longer than its own wall-clock" in bad
    assert "expected 4 samples" in timing_consistency("cuda", _reply([1.0] * 3, [1.0] * 3), 1.0, {}, 0.0, 4)
    assert "negative" in timing_consistency("cpu", _reply([-1.0] * 4), 1.0, {}, 0.0, 4)


def test_reward_is_bounded_and_failures_are_not_positive():
    assert reward("incorrect", 100.0) == -0.5
    assert reward("result_cache", 100.0) == -1.0
    assert reward(None, 1.0) == pytest.approx(0.55)
    assert reward(None, 8.0) == pytest.approx(1.0) == reward(None, 1e9)
    assert reward(None, 1 / 8) == pytest.approx(0.1) == reward(None, 1e-9)
    assert reward(None, None) == 0.1 and reward(None, math.inf) == 0.1
    assert reward(None, 2.0) > reward(None, 1.5) > reward(None, 1.0)


def test_wire_round_trip_and_refusals():
    ts = [torch.randn(3, 5, dtype=torch.bfloat16), torch.arange(7, dtype=torch.int32),
          torch.zeros(0), torch.randn(2).to(torch.float8_e4m3fn)]
    h, out = wire.unpack(wire.pack({"a": 1}, {"x": ts}))
    assert h == {"a": 1}
    for a, b in zip(ts, out["x"], strict=True):
        assert a.dtype == b.dtype and a.shape == b.shape and torch.equal(a.view(torch.uint8), b.view(torch.uint8))
    with pytest.raises(wire.WireError):
        wire.unpack(b"\x00")
    with pytest.raises(wire.WireError):
        wire.unpack(struct.pack("<Q", 3) + b"abc")
    good = wire.pack({}, {"x": [torch.ones(2)]})
    with pytest.raises(wire.WireError):
        wire.unpack(good + b"extra")
    with pytest.raises(wire.WireError):
        wire.pack({}, {"x": [torch.ones(2).as_subclass(type("Sub", (torch.Tensor,), {}))]})


def test_error_metric_and_signatures():
    r = torch.tensor([1.0, -2.0, 3.0])
    assert normalised_error(r.clone(), r, 1e-3, 1e-3) == 0.0
    assert normalised_error(r + 1e-2, r, 1e-3, 1e-3) > 1
    assert normalised_error(torch.tensor([1.0, float("nan"), 3.0]), r, 1, 1) == math.inf
    assert normalised_error(torch.tensor([1, 2]), torch.tensor([1, 3]), 1, 1) == math.inf
    bf = torch.randn(64).to(torch.bfloat16).float()
    assert _low_precision_grid(bf) == "bfloat16" and _low_precision_grid(torch.randn(64)) is None
    t = torch.randn(4, 4)
    t.view(torch.uint8)[:2].fill_(0xFF)
    assert _sentinel_fraction(t) == pytest.approx(0.5)
