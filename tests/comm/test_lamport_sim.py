"""The Lamport protocol (epochs, buffer rotation, clearing, slots, two-shot chunks) under random
interleavings of every thread of every rank: no stale read, no deadlock, for worlds 2..8."""

from __future__ import annotations

import random

import pytest

from tests.comm.lamport_sim import LamportSim, ProtocolViolation


def _calls(rng: random.Random, n: int) -> list[tuple[str, int]]:
    return [(rng.choice(["oneshot", "twoshot"]), rng.randint(1, 9)) for _ in range(n)]


@pytest.mark.parametrize("world", [2, 3, 4, 8])
@pytest.mark.parametrize("seed", range(6))
def test_three_buffers_never_read_stale_data(world: int, seed: int) -> None:
    rng = random.Random(seed * 31 + world)
    sim = LamportSim(world, slot_packets=32)
    calls = _calls(rng, 12)
    sim.run(calls, rng)
    assert all(r.epoch == len(calls) for r in sim.ranks)
    assert sim.reads > 0


def test_two_buffers_are_caught() -> None:
    """Clearing the previous buffer with only two buffers wipes a fast peer's next-epoch data: the model
    must see it (so the three-buffer test above can fail)."""
    failures = 0
    for seed in range(40):
        rng = random.Random(seed)
        sim = LamportSim(2, slot_packets=32, n_buffers=2, buffer_of=lambda e: e % 2, clear_of=lambda e: (e + 1) % 2)
        try:
            sim.run(_calls(rng, 10), rng)
        except ProtocolViolation:
            failures += 1
    assert failures > 0


def test_clearing_the_wrong_buffer_is_caught() -> None:
    """Clearing the buffer in use instead of the previous one loses peers' packets or leaves stale ones."""
    failures = 0
    for seed in range(20):
        rng = random.Random(seed)
        sim = LamportSim(2, slot_packets=32, clear_of=lambda e: e % 3)  # "clears" the buffer in use: wrong
        try:
            sim.run(_calls(rng, 8), rng)
        except ProtocolViolation:
            failures += 1
    assert failures > 0


@pytest.mark.parametrize("world", [2, 3, 8])
@pytest.mark.parametrize("seed", range(4))
def test_fence_free_kernels_never_read_stale_data(world: int, seed: int) -> None:
    """No fences in the kernels: pushes and clears land in any order while a kernel runs, and only the
    kernel boundary drains them. Three buffers still never read stale data nor deadlock."""
    rng = random.Random(seed * 17 + world)
    sim = LamportSim(world, slot_packets=32, delayed_stores=True)
    calls = _calls(rng, 10)
    sim.run(calls, rng)
    assert all(r.epoch == len(calls) for r in sim.ranks)
    assert sim.reads > 0


def test_without_the_kernel_boundary_drain_a_late_clear_is_caught() -> None:
    """If a kernel's clears could still be in flight after it ended, a late clear would wipe a peer's
    newer packets (a hang) or a late push would be read in the wrong epoch: the model must catch it, so
    the test above can fail."""
    failures = 0
    for seed in range(30):
        rng = random.Random(seed)
        sim = LamportSim(2, slot_packets=32, delayed_stores=True, drain_at_kernel_end=False)
        try:
            sim.run(_calls(rng, 10), rng)
        except ProtocolViolation:
            failures += 1
    assert failures > 0
