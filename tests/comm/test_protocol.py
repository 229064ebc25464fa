"""The protocol arithmetic shared by the kernels and the launcher: rotation, slots, packets, chunks, grids."""

from __future__ import annotations

import pytest

from floorline.comm import protocol as P


def test_rotation_uses_three_distinct_buffers() -> None:
    for e in range(50):
        cur, clr, nxt = P.buffer_index(e), P.clear_index(e), P.buffer_index(e + 1)
        assert len({cur, clr, nxt}) == 3  # never clear what this or the next epoch writes
        assert clr == P.buffer_index(e - 1) if e else clr == 2


@pytest.mark.parametrize("world", range(2, 9))
def test_slots_tile_the_region_without_overlap(world: int) -> None:
    lay = P.layout_for(world, max_bytes=1 << 20, oneshot_max_bytes=256 << 10)
    spans = sorted((P.slot_offset(b, s, world, lay.slot_bytes), lay.slot_bytes)
                   for b in range(P.N_BUFFERS) for s in range(world))
    assert spans[0][0] == P.CTRL_BYTES
    for (a, n), (b, _) in zip(spans, spans[1:], strict=False):
        assert a + n == b and a % 16 == 0
    assert spans[-1][0] + spans[-1][1] == lay.region_bytes
    with pytest.raises(ValueError):
        P.slot_offset(3, 0, world, lay.slot_bytes)
    with pytest.raises(ValueError):
        P.slot_offset(0, world, world, lay.slot_bytes)


@pytest.mark.parametrize("n,eb,want", [(1, 2, 1), (8, 2, 1), (9, 2, 2), (1, 4, 1), (4, 4, 1), (5, 4, 2), (0, 2, 0)])
def test_packets(n: int, eb: int, want: int) -> None:
    assert P.packets(n, eb) == want


@pytest.mark.parametrize("world", range(2, 9))
@pytest.mark.parametrize("npk", [1, 2, 3, 7, 8, 9, 63, 64, 65, 1000, 4097])
def test_twoshot_chunks_cover_every_packet_once(world: int, npk: int) -> None:
    seen = []
    for r in range(world):
        lo, hi = P.chunk_range(r, npk, world)
        assert 0 <= lo <= hi <= npk
        assert hi - lo <= P.twoshot_chunk(npk, world)
        seen += list(range(lo, hi))
        for p in range(lo, hi):
            assert P.owner(p, npk, world) == r
    assert seen == list(range(npk))


@pytest.mark.parametrize("world", range(2, 9))
def test_layout_carries_what_it_promises(world: int) -> None:
    mb = 64 << 20
    lay = P.layout_for(world, max_bytes=mb, oneshot_max_bytes=1 << 20)
    for eb in (2, 4):
        n2 = mb // eb
        assert lay.fits("twoshot", n2, eb)
        npk = P.packets(n2, eb)
        assert P.dirty_packets("twoshot", npk, world) * P.PACKET_BYTES <= lay.slot_bytes
        n1 = (1 << 20) // eb
        assert lay.fits("oneshot", n1, eb)
        assert P.dirty_packets("oneshot", P.packets(n1, eb), world) * P.PACKET_BYTES <= lay.slot_bytes
        assert not lay.fits("oneshot", lay.max_elems("oneshot", eb) + 1, eb)
    assert lay.slot_bytes % 4096 == 0


def test_world_limits() -> None:
    for w in (0, 1, 9):
        with pytest.raises(ValueError, match="world"):
            P.check_world(w)
    for w in range(2, 9):
        P.check_world(w)


@pytest.mark.parametrize("npk", [1, 511, 512, 513, 10**6])
def test_grid_keeps_every_block_resident(npk: int) -> None:
    blocks, threads = P.grid(npk, sm_count=132)
    assert 1 <= blocks <= 132 and threads == 512
    assert blocks * threads >= min(npk, 132 * 512)


@pytest.mark.parametrize("row_pk", [1, 31, 512, 513, 2048])
def test_fused_grid(row_pk: int) -> None:
    blocks, threads = P.fused_grid(rows=3, row_packets=row_pk, sm_count=132)
    assert blocks == 3 and threads % 32 == 0 and threads * 4 >= row_pk and threads <= 512
    with pytest.raises(ValueError, match="hidden"):
        P.fused_grid(1, 2049, 132)


def test_dirty_extent_rejects_unknown_algorithm() -> None:
    with pytest.raises(ValueError, match="algorithm"):
        P.dirty_packets("ring", 4, 2)
