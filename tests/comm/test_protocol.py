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


def test_block_threads_follow_the_measured_rule() -> None:
    """128 threads while a full 128-thread grid holds every packet once (won up to 256 KB on 132 SMs), 512
    beyond (won from 1 MB); never decreasing in size."""
    assert P.block_threads_for(1, 132) == 128
    assert P.block_threads_for((256 << 10) // P.PACKET_BYTES, 132) == 128  # 256 KB: 16384 packets
    assert P.block_threads_for(128 * 132, 132) == 128
    assert P.block_threads_for(128 * 132 + 1, 132) == 512
    assert P.block_threads_for((1 << 20) // P.PACKET_BYTES, 132) == 512  # 1 MB
    picks = [P.block_threads_for(1 << k, 132) for k in range(0, 24)]
    assert picks == sorted(picks)
    with pytest.raises(ValueError):
        P.block_threads_for(1, 0)


@pytest.mark.parametrize("row_pk", [1, 8, 31, 32, 64, 100, 512, 513, 640, 1000, 1024])
@pytest.mark.parametrize("rows", [1, 3, 64, 200])
@pytest.mark.parametrize("max_blocks", [132, 192, 7])
def test_fused_split_grid_tiles_every_row(row_pk: int, rows: int, max_blocks: int) -> None:
    blocks, threads = P.fused_split_grid(rows, row_pk, max_blocks)
    bpr = -(-row_pk // threads)
    assert threads % 32 == 0 and 32 <= threads <= 256
    assert 1 <= bpr <= P.FUSED_ITEMS and blocks % bpr == 0 and blocks <= max_blocks
    assert blocks // bpr <= rows  # every block has a row (the kernel's row loop starts at blockIdx / bpr)
    slices = P.split_slices(row_pk, threads)
    assert len(slices) == bpr and sorted(p for s in slices for p in s) == list(range(row_pk))
    assert all(len(s) <= threads for s in slices)  # one packet per thread
    # the full-row pass: every packet once over the threads, at most ITEMS per thread, the thread's own
    # slice packet among them (at j = the block's slice index)
    cover = [p for t in range(threads) for p in P.split_full_row(row_pk, threads, t)]
    assert sorted(cover) == list(range(row_pk))
    assert max(len(P.split_full_row(row_pk, threads, t)) for t in range(threads)) <= P.FUSED_ITEMS
    for b, sl in enumerate(slices):
        for p in sl:
            assert P.split_full_row(row_pk, threads, p - b * threads)[b] == p


def test_fused_split_grid_refuses_rows_it_cannot_hold() -> None:
    with pytest.raises(ValueError, match="hidden"):
        P.fused_split_grid(1, 1025, 132)
    with pytest.raises(ValueError, match="blocks"):
        P.fused_split_grid(1, 1024, 3)  # 4 blocks per row, 3 allowed


@pytest.mark.parametrize("world", [2, 3, 8])
def test_world_sizes_up_to_8_size_their_regions_and_grids(world: int) -> None:
    """The world-8 paths (issue 9) on the CPU: a region for the largest message in the bench (64 MB two-shot
    and the crossover's one-shot range), slots that tile it, two-shot chunks that fit one slot, and the
    replicated epoch copies for every grid the communicator may launch."""
    from floorline.comm import choice

    t = choice.crossover(world)
    lay = P.layout_for(world, 64 << 20, max(t.oneshot_max_bytes, 1 << 20), P.ctrl_bytes_for("replicated"))
    assert lay.fits("twoshot", (64 << 20) // 2, 2) and lay.fits("oneshot", t.oneshot_max_bytes // 2, 2)
    ends = sorted((P.slot_offset(b, s, world, lay.slot_bytes, lay.ctrl_bytes), b, s)
                  for b in range(P.N_BUFFERS) for s in range(world))
    assert ends[0][0] == lay.ctrl_bytes and ends[-1][0] + lay.slot_bytes == lay.region_bytes
    npk = (64 << 20) // P.PACKET_BYTES
    for r in range(world):
        lo, hi = P.chunk_range(r, npk, world)
        assert 2 * (hi - lo) * P.PACKET_BYTES <= lay.slot_bytes  # reduce-scatter half + all-gather half
    assert P.dirty_packets("twoshot", npk, world) * P.PACKET_BYTES <= lay.slot_bytes
    for n in (1, 64, 4096, 1 << 20, npk):
        blocks, threads = P.grid(n, min(132, P.MAX_REPLICAS), P.block_threads_for(n, 132))
        assert blocks <= P.MAX_REPLICAS
        assert sorted(i for b in range(blocks) for i in P.replica_writes(b, blocks, threads)) == \
            list(range(P.MAX_REPLICAS))


# ---- the cluster fused kernel (allreduce_fused_rmsnorm_cluster): a row over one thread-block cluster ----
@pytest.mark.parametrize("row_pk", [1, 8, 100, 127, 128, 129, 500, 512, 513, 640, 1000, 1023, 1024, 1025, 1100, 2047,
                                    4096, 5000, 8191, 8192])
@pytest.mark.parametrize("rows", [1, 3, 17, 200])
@pytest.mark.parametrize("max_blocks", [132, 192, 9])
def test_fused_cluster_grid_tiles_every_row(row_pk: int, rows: int, max_blocks: int) -> None:
    clusters, c, threads = P.fused_cluster_grid(rows, row_pk, max_blocks)
    assert (c, threads) == P.fused_cluster_shape(row_pk)
    assert 1 <= c <= P.FUSED_CLUSTER_MAX and threads % 32 == 0 and 32 <= threads <= P.FUSED_CLUSTER_MAX_THREADS
    assert 1 <= clusters <= rows and clusters * c <= max_blocks  # every block resident, one epoch copy each
    # block b of a cluster (its %cluster_ctarank), thread t owns packet b * threads + t: every packet of the
    # row exactly once, at most one per thread, and no block without a packet
    owned = [b * threads + t for b in range(c) for t in range(threads) if b * threads + t < row_pk]
    assert owned == list(range(row_pk))
    assert (c - 1) * threads < row_pk <= c * threads
    assert P.split_slices(row_pk, threads) == [[p for p in owned if p // threads == b] for b in range(c)]
    if row_pk <= P.FUSED_CLUSTER_MAX * P.FUSED_CLUSTER_THREADS:
        assert threads == P.FUSED_CLUSTER_THREADS  # the plain one-shot's 128-thread layout
    else:
        assert c >= P.FUSED_CLUSTER_MAX - 1 and threads > P.FUSED_CLUSTER_THREADS


def test_fused_cluster_grid_at_decode_shapes() -> None:
    """hidden 4096 bf16 (512 packets): 4 blocks of 128 threads, like the plain one-shot that measured 2.72 us;
    8192 bf16 or 4096 fp32 (1024 packets): 8 x 128; wider rows grow the blocks, not the cluster."""
    assert P.fused_cluster_grid(1, 512, 132) == (1, 4, 128)
    assert P.fused_cluster_grid(1, 1024, 132) == (1, 8, 128)
    assert P.fused_cluster_grid(1, 2048, 132) == (1, 8, 256)
    assert P.fused_cluster_grid(200, 512, 132) == (33, 4, 128)  # clusters loop over rows
    assert P.fused_cluster_grid(200, 512, 132, max_clusters=20) == (20, 4, 128)  # occupancy bound
    assert P.fused_cluster_grid(5, 512, 132, max_clusters=20) == (5, 4, 128)


def test_fused_cluster_grid_refuses_rows_it_cannot_hold() -> None:
    top = P.FUSED_CLUSTER_MAX * P.FUSED_CLUSTER_MAX_THREADS
    assert P.fused_cluster_shape(top) == (8, 1024)
    for bad in (0, top + 1):
        with pytest.raises(ValueError, match=r"^hidden: 1 to 8192 packets per row for the cluster variant"):
            P.fused_cluster_grid(1, bad, 132)
    with pytest.raises(ValueError, match="cluster of 8 blocks"):
        P.fused_cluster_grid(1, 1024, 7)
    with pytest.raises(ValueError, match="max_clusters"):
        P.fused_cluster_grid(1, 512, 132, max_clusters=-1)
    assert P.dirty_packets("fused_cluster", 512, 2) == 512  # pushes exactly like one-shot
