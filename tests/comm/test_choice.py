"""Automatic algorithm choice: by size and world, NCCL only where a NCCL group exists."""

from __future__ import annotations

import pytest

from floorline.comm import choice


def test_table_has_every_world() -> None:
    for w in range(2, 9):
        t = choice.crossover(w)
        assert 0 < t.oneshot_max_bytes <= t.twoshot_max_bytes
        assert t.source


def test_choice_follows_size() -> None:
    t = choice.Crossover(oneshot_max_bytes=1000, twoshot_max_bytes=5000)
    assert choice.choose(0, 2, True, t) == "oneshot"
    assert choice.choose(1000, 2, True, t) == "oneshot"
    assert choice.choose(1001, 2, True, t) == "twoshot"
    assert choice.choose(5000, 2, True, t) == "twoshot"
    assert choice.choose(5001, 2, True, t) == "nccl"
    assert choice.choose(5001, 2, False, t) == "twoshot"  # thread mode has no NCCL group


def test_choice_is_monotone_in_size() -> None:
    order = {"oneshot": 0, "twoshot": 1, "nccl": 2}
    for w in range(2, 9):
        picks = [order[choice.choose(1 << k, w, True)] for k in range(0, 28)]
        assert picks == sorted(picks)


def test_negative_size_refused() -> None:
    with pytest.raises(ValueError, match="nbytes"):
        choice.choose(-1, 2, True)
