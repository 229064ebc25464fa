"""The Lamport protocol (epochs, buffer rotation, clearing, slots, two-shot chunks) under random
interleavings of every thread of every rank: no stale read, no deadlock, for worlds 2..8."""

from __future__ import annotations

import random

import pytest

from floorline.comm import protocol
from tests.comm.lamport_sim import LamportSim, ProtocolViolation, ReplicatedSim


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


# ---- replicated epochs (CommConfig(epoch="replicated")): per-block copies, no arrival ticket ----------
@pytest.mark.parametrize("world", [2, 3, 8])
@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("delayed", [False, True])
def test_replicated_epochs_never_read_stale_data(world: int, seed: int, delayed: bool) -> None:
    """Grids change from call to call (1..5 blocks), blocks start late or early, stores land in any order
    until the kernel boundary: every copy still advances once per call, no stale read, no deadlock."""
    rng = random.Random(seed * 13 + world + (100 if delayed else 0))
    sim = ReplicatedSim(world, slot_packets=32, delayed_stores=delayed)
    calls = _calls(rng, 10)
    sim.run(calls, rng)
    assert all(r.call == len(calls) for r in sim.ranks)
    assert all(c == len(calls) for rep in sim.rep for c in rep)
    assert sim.reads > 0


def _failures(writes_of, seeds: int = 30, **kw) -> int:
    failures = 0
    for seed in range(seeds):
        rng = random.Random(seed)
        sim = ReplicatedSim(2, slot_packets=32, writes_of=writes_of, **kw)
        try:
            sim.run(_calls(rng, 10), rng)
        except ProtocolViolation:
            failures += 1
    return failures


def test_replicated_advancing_only_the_launched_copies_is_caught() -> None:
    """Broken: each block advances only its own copy. A later call on a larger grid starts blocks on a stale
    epoch (wrong buffer): the model must see it."""
    assert _failures(lambda b, g, t, n: [b]) > 0


def test_replicated_advancing_another_blocks_copy_is_caught() -> None:
    """Broken: every block advances every copy (no ownership). A fast block bumps the copy of a sibling that
    has not read it yet, which then works one epoch ahead: the model must see it."""
    assert _failures(lambda b, g, t, n: list(range(n))) > 0


@pytest.mark.parametrize("grid", [1, 2, 3, 7, 132, 192])
@pytest.mark.parametrize("threads", [32, 512, 1024])
def test_replica_writes_cover_every_copy_once_and_never_a_sibling(grid: int, threads: int) -> None:
    seen: list[int] = []
    for b in range(grid):
        w = protocol.replica_writes(b, grid, threads)
        assert b in w  # its own copy
        assert all(i == b or i >= grid for i in w)  # never a copy another block of this grid reads
        seen += w
    assert sorted(seen) == list(range(protocol.MAX_REPLICAS))


def test_replicated_region_keeps_copies_inside_its_control_block() -> None:
    assert (protocol.REPLICA_WORD + protocol.MAX_REPLICAS) * 4 <= protocol.REPLICATED_CTRL_BYTES
    lay = protocol.layout_for(2, 1 << 20, 1 << 20, protocol.ctrl_bytes_for("replicated"))
    assert protocol.slot_offset(0, 0, 2, lay.slot_bytes, lay.ctrl_bytes) == protocol.REPLICATED_CTRL_BYTES
    assert lay.region_bytes == protocol.REPLICATED_CTRL_BYTES + 3 * 2 * lay.slot_bytes
    with pytest.raises(ValueError, match="epoch"):
        protocol.ctrl_bytes_for("atomic")


# ---- the split fused kernel (allreduce_fused_rmsnorm_split): whole-row waits and own-slot residual copies --
def _calls_with_split(rng: random.Random, n: int) -> list[tuple[str, int]]:
    return [(rng.choice(["oneshot", "twoshot", "fused_split"]), rng.randint(1, 6)) for _ in range(n)]


@pytest.mark.parametrize("world", [2, 3, 8])
@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("delayed", [False, True])
@pytest.mark.parametrize("replicated", [False, True])
def test_fused_split_mixed_with_plain_calls_never_reads_stale_data(world: int, seed: int, delayed: bool,
                                                                     replicated: bool) -> None:
    """Split fused calls (our own slot now carries residual copies, cleared two epochs later like any slot)
    interleaved with one-shot and two-shot calls, on both epoch schemes, stores landing in any order until
    the kernel boundary: no stale read, no deadlock, whatever block starts when."""
    rng = random.Random(seed * 7 + world + (50 if delayed else 0) + (500 if replicated else 0))
    sim = (ReplicatedSim if replicated else LamportSim)(world, slot_packets=32, delayed_stores=delayed)
    calls = _calls_with_split(rng, 8)
    sim.run(calls, rng)
    assert all(r.call == len(calls) for r in sim.ranks)
    assert sim.reads > 0


def _inplace_rows(via_copy: bool, rng: random.Random, bpr: int = 4) -> bool:
    """One rank's blocks of one row with residual_out == residual, in a random order of their steps:
    start (read what the design reads of the residual), finish (needs the whole row: in the copy design
    every block's copy; then store its slice of residual_out). True when some block summed a residual
    slice that another block had already overwritten."""
    residual = ["old"] * bpr  # one entry per slice
    copies: list[str | None] = [None] * bpr
    seen: dict[int, list[str]] = {}
    steps = [(b, "start") for b in range(bpr)] + [(b, "finish") for b in range(bpr)]
    started: set[int] = set()
    pending = list(steps)
    while pending:
        ready = [st for st in pending if st[1] == "start" or (
            st[0] in started and (not via_copy or all(c is not None for c in copies)))]
        b, what = ready[rng.randrange(len(ready))]
        pending.remove((b, what))
        if what == "start":
            started.add(b)
            if via_copy:
                copies[b] = residual[b]  # its own slice, read before it is ever overwritten (same thread)
            else:
                seen[b] = list(residual)  # the whole row, straight from residual
        else:
            row = list(copies) if via_copy else seen[b]
            if via_copy:
                seen[b] = row
            residual[b] = "new"  # residual_out slice b
    return any(v != "old" for row in seen.values() for v in row)


def test_fused_split_in_place_residual_needs_the_copies() -> None:
    """Why the split kernel takes other blocks' residual slices from its own slot: read straight from an
    in-place residual, a block can sum a slice its sibling already replaced by h (the model finds it); read
    from the copies, never."""
    rng = random.Random(3)
    assert any(_inplace_rows(False, rng) for _ in range(200))
    assert not any(_inplace_rows(True, rng) for _ in range(2000))


def test_fused_split_without_clearing_its_slots_is_caught(monkeypatch) -> None:
    """The model can fail for split calls: if their packets (peer slots and the own-slot residual copies)
    were not counted as dirty, the next use of that buffer would read them as fresh."""
    real = protocol.dirty_packets
    monkeypatch.setattr(protocol, "dirty_packets",
                        lambda alg, npk, w: 0 if alg == "fused_split" else real(alg, npk, w))
    failures = 0
    for seed in range(20):
        rng = random.Random(seed)
        sim = LamportSim(2, slot_packets=32)
        try:
            sim.run([("fused_split", rng.randint(1, 6)) for _ in range(8)], rng)
        except ProtocolViolation:
            failures += 1
    assert failures > 0


# ---- the cluster fused kernel (allreduce_fused_rmsnorm_cluster): one-shot data path, per-packet waits ----
@pytest.mark.parametrize("world", [2, 3, 8])
@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("delayed", [False, True])
@pytest.mark.parametrize("replicated", [False, True])
def test_fused_cluster_mixed_with_other_calls_never_reads_stale_data(world: int, seed: int, delayed: bool,
                                                                       replicated: bool) -> None:
    """Cluster fused calls (each thread waits only for its own packet from every peer, like one-shot)
    interleaved with one-shot, two-shot and split fused calls on both epoch schemes, stores landing in any
    order until the kernel boundary: no stale read, no deadlock. Its cross-block reduction runs in the
    cluster's shared memory, which the Lamport model does not carry."""
    rng = random.Random(seed * 11 + world + (70 if delayed else 0) + (700 if replicated else 0))
    sim = (ReplicatedSim if replicated else LamportSim)(world, slot_packets=32, delayed_stores=delayed)
    calls = [(rng.choice(["oneshot", "twoshot", "fused_split", "fused_cluster", "fused_cluster"]), rng.randint(1, 6))
             for _ in range(8)]
    sim.run(calls, rng)
    assert all(r.call == len(calls) for r in sim.ranks)
    assert sim.reads > 0


def test_fused_cluster_without_clearing_its_slots_is_caught(monkeypatch) -> None:
    """The model can fail for cluster calls: packets not counted as dirty would be read as fresh later."""
    real = protocol.dirty_packets
    monkeypatch.setattr(protocol, "dirty_packets",
                        lambda alg, npk, w: 0 if alg == "fused_cluster" else real(alg, npk, w))
    failures = 0
    for seed in range(20):
        rng = random.Random(seed)
        sim = LamportSim(2, slot_packets=32)
        try:
            sim.run([("fused_cluster", rng.randint(1, 6)) for _ in range(8)], rng)
        except ProtocolViolation:
            failures += 1
    assert failures > 0
