"""The Lamport protocol's arithmetic, in Python: buffer rotation, slot offsets, packet counts, chunking,
launch grids and region sizes. The CUDA kernels (floorline.kernels.allreduce_*) implement the same
rules; the communicator uses these functions to size and launch them, and the CPU tests check them,
including a step-by-step simulation of several ranks under random interleavings (tests/comm).

Layout of one rank's registered region (bytes):
    [0, CTRL_BYTES)                     control block: epoch, arrival ticket, abort, dirty counts, probe flag
    CTRL_BYTES + (buf * world + slot) * slot_bytes     slot `slot` of Lamport buffer `buf` (0..2)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

PACKET_BYTES = 16  # one 128-bit store/load: the unit the sentinel check works on
N_BUFFERS = 3  # epoch e writes buffer e % 3, clears buffer (e + 2) % 3
CTRL_BYTES = 256
MAX_WORLD = 8
MIN_WORLD = 2
ALGORITHMS = ("oneshot", "twoshot")
ELEM_BYTES = {"float32": 4, "float16": 2, "bfloat16": 2}
KERNEL_SUFFIX = {"float32": "f32", "float16": "f16", "bfloat16": "bf16"}
# How a kernel learns and advances the epoch (CommConfig.epoch):
# - "replicated" (default since round A): one epoch copy per block index, each launched block advances its
#   share of the copies, no atomic (kernels compiled with FL_EPOCH_REPLICAS; see
#   allreduce_lamport.finish_epoch). Measured on nvidia-h200-x2 (round 0 of session 2, commit a4f7cee,
#   graph per op, process mode): with 128-thread blocks 2.57 / 2.77 / 3.16 us at 1 / 8 / 64 KB against
#   2.78 / 3.32 / 3.95 us for the ticket scheme at 512 threads;
# - "ticket" (the run-3 default, kept for comparison): one epoch word, bumped by the last block to take an
#   arrival ticket (a device-scope atomic at the end of every multi-block kernel).
EPOCH_SCHEMES = ("replicated", "ticket")
REPLICA_WORD = 64  # u32 index of copy 0 in the control block
MAX_REPLICAS = 192  # copies, so grids up to 192 blocks (one per SM: 132 on H100/H200, 148 on B200)
REPLICATED_CTRL_BYTES = 1024  # control block of a replicated-epoch region: words 64 .. 255 hold the copies


def check_world(world: int) -> None:
    if not MIN_WORLD <= world <= MAX_WORLD:
        raise ValueError(f"world: must be between {MIN_WORLD} and {MAX_WORLD}, got {world}")


def elems_per_packet(elem_bytes: int) -> int:
    if elem_bytes not in (2, 4):
        raise ValueError(f"elem_bytes: must be 2 or 4, got {elem_bytes}")
    return PACKET_BYTES // elem_bytes


def packets(n_elems: int, elem_bytes: int) -> int:
    """16-byte packets that carry n elements; the last one is zero-padded."""
    per = elems_per_packet(elem_bytes)
    return -(-n_elems // per)


def buffer_index(epoch: int) -> int:
    return epoch % N_BUFFERS


def clear_index(epoch: int) -> int:
    """The buffer this epoch clears: the one the previous epoch used."""
    return (epoch + N_BUFFERS - 1) % N_BUFFERS


def slot_offset(buf: int, slot: int, world: int, slot_bytes: int, ctrl_bytes: int = CTRL_BYTES) -> int:
    if not (0 <= buf < N_BUFFERS and 0 <= slot < world):
        raise ValueError(f"buf/slot out of range: buf={buf}, slot={slot}, world={world}")
    return ctrl_bytes + (buf * world + slot) * slot_bytes


def ctrl_bytes_for(epoch: str) -> int:
    if epoch not in EPOCH_SCHEMES:
        raise ValueError(f"epoch: must be one of {', '.join(EPOCH_SCHEMES)}, got {epoch!r}")
    return CTRL_BYTES if epoch == "ticket" else REPLICATED_CTRL_BYTES


def replica_writes(block: int, grid: int, threads: int, n_replicas: int = MAX_REPLICAS) -> list[int]:
    """Epoch copies block `block` of a `grid`-block kernel advances in the replicated scheme (the loop in
    allreduce_lamport.finish_epoch): b, b + G, b + 2G, ... Over the grid, every copy exactly once."""
    if not 1 <= grid <= n_replicas or not 0 <= block < grid or threads < 1:
        raise ValueError(f"grid must be 1..{n_replicas} and block < grid, got block={block}, grid={grid}")
    return [i for t in range(threads) for i in range(block + grid * t, n_replicas, grid * threads)]


def twoshot_chunk(npk: int, world: int) -> int:
    """Packets each rank owns in the reduce-scatter; the last rank's chunk may be shorter or empty."""
    return -(-npk // world)


def chunk_range(rank: int, npk: int, world: int) -> tuple[int, int]:
    c = twoshot_chunk(npk, world)
    lo = min(rank * c, npk)
    return lo, min(lo + c, npk)


def owner(p: int, npk: int, world: int) -> int:
    return p // twoshot_chunk(npk, world)


def dirty_packets(algorithm: str, npk: int, world: int) -> int:
    """Packets written into each receive slot by one call: what the next epoch but one must clear. The fused
    kernels ("fused_split" also fills its own slot with residual copies; "fused_cluster" pushes exactly like
    one-shot) write npk, like one-shot."""
    if algorithm in ("oneshot", "fused_split", "fused_cluster"):
        return npk
    if algorithm == "twoshot":
        return 2 * twoshot_chunk(npk, world)
    raise ValueError(f"algorithm: must be one of {ALGORITHMS}, got {algorithm!r}")


@dataclass(frozen=True)
class Layout:
    world: int
    slot_bytes: int
    ctrl_bytes: int = CTRL_BYTES  # REPLICATED_CTRL_BYTES for the replicated-epoch scheme

    @property
    def region_bytes(self) -> int:
        return self.ctrl_bytes + N_BUFFERS * self.world * self.slot_bytes

    def max_elems(self, algorithm: str, elem_bytes: int) -> int:
        """Largest message (elements) the algorithm can carry in this layout."""
        slot_pk = self.slot_bytes // PACKET_BYTES
        per = elems_per_packet(elem_bytes)
        if algorithm == "oneshot":
            return slot_pk * per
        if algorithm == "twoshot":
            return (slot_pk // 2) * self.world * per
        raise ValueError(f"algorithm: must be one of {ALGORITHMS}, got {algorithm!r}")

    def fits(self, algorithm: str, n_elems: int, elem_bytes: int) -> bool:
        return n_elems <= self.max_elems(algorithm, elem_bytes)


def layout_for(world: int, max_bytes: int, oneshot_max_bytes: int, ctrl_bytes: int = CTRL_BYTES) -> Layout:
    """Smallest slot that carries `oneshot_max_bytes` one-shot and `max_bytes` two-shot messages."""
    check_world(world)
    if max_bytes <= 0 or oneshot_max_bytes <= 0:
        raise ValueError("max_bytes and oneshot_max_bytes must be > 0")
    twoshot_slot = 2 * twoshot_chunk(-(-max_bytes // PACKET_BYTES), world) * PACKET_BYTES
    slot = max(oneshot_max_bytes, twoshot_slot)
    slot = -(-slot // 4096) * 4096  # page-align slots so every slot starts 16-byte aligned and TLB-friendly
    return Layout(world=world, slot_bytes=slot, ctrl_bytes=ctrl_bytes)


# Threads per block of the one-shot/two-shot kernels, chosen by message size (CommConfig.block_threads = 0).
# Measured on nvidia-h200-x2 (round 0 of session 2, commit a4f7cee, replicated epochs, graph per op, process
# mode; thread mode within 1 %), one-shot 128 vs 512 threads: 1 KB 2.57 vs 2.98, 8 KB 2.77 vs 3.41, 64 KB
# 3.16 vs 3.76, 256 KB 3.77 vs 4.27 us (128 wins: a small message spread over 4x the SMs, each SM pushing
# a quarter of the bytes); 1 MB 7.35 vs 6.50, 2 MB 13.85 vs 10.67, 4 MB 27.3 vs 18.1 us (128 loses: past
# 128 x SMs packets a 128-thread grid loops over several packets per thread, a 512-thread grid does not).
# Two-shot the same way: 128 wins up to 256 KB (4.79 vs 5.33 us), loses from 1 MB (7.03 vs 6.82 us).
# So: 128 threads while every thread of a full 128-thread grid holds at most one packet, 512 beyond.
# (256 threads, and the sizes between 256 KB and 1 MB, were not measured.)
SMALL_BLOCK_THREADS = 128
LARGE_BLOCK_THREADS = 512


def block_threads_for(npk: int, max_blocks: int) -> int:
    """Threads per block for an `npk`-packet message on a grid of at most `max_blocks` blocks."""
    if npk < 0 or max_blocks < 1:
        raise ValueError(f"npk must be >= 0 and max_blocks >= 1, got {npk}, {max_blocks}")
    return SMALL_BLOCK_THREADS if npk <= SMALL_BLOCK_THREADS * max_blocks else LARGE_BLOCK_THREADS


def grid(npk: int, sm_count: int, threads: int = 512) -> tuple[int, int]:
    """(blocks, threads): every block must be resident at once (each waits on peers' blocks), so at most one
    block per SM, and no more blocks than there are packets to hand out."""
    blocks = max(1, min(sm_count, math.ceil(npk / threads)))
    return blocks, threads


def fused_light_grid(rows: int, row_packets: int, sm_count: int, max_threads: int = 1024) -> tuple[int, int]:
    """(blocks, threads) for the light fused kernel: one packet per thread, so a row fits in one block."""
    if row_packets < 1 or row_packets > max_threads:
        raise ValueError(f"hidden: 1 to {max_threads} packets per row for the light variant, got {row_packets}")
    return max(1, min(rows, sm_count)), -(-row_packets // 32) * 32


FUSED_SPLIT = 4  # blocks a row is spread over by the split fused kernel (8 KB rows: 2 KB per SM, as the
# 128-thread plain one-shot that measured 2.77 us at 8 KB pushes)
FUSED_ITEMS = 4  # packets per thread in the split kernel's full-row pass (= most blocks per row)


def fused_split_grid(rows: int, row_packets: int, max_blocks: int, split: int = FUSED_SPLIT,
                     items: int = FUSED_ITEMS, max_threads: int = 256) -> tuple[int, int]:
    """(blocks, threads) for the split fused kernel (allreduce_fused_rmsnorm_split): a row is spread over
    `bpr` = ceil(row_packets / threads) <= items blocks, each pushing and storing one slice of `threads`
    packets (one per thread) and reading the whole row; blocks = bpr * row groups, row groups <= rows.
    The kernel re-derives bpr from blockDim and the row width, so this function and the kernel agree."""
    if row_packets < 1 or row_packets > max_threads * items:
        raise ValueError(f"hidden: 1 to {max_threads * items} packets per row, got {row_packets}")
    per_block = -(-row_packets // split)
    threads = min(max_threads, max(32, -(-per_block // 32) * 32))
    bpr = -(-row_packets // threads)
    if bpr > max_blocks:
        raise ValueError(f"hidden: a row needs {bpr} blocks, more than the {max_blocks} the grid may use")
    groups = max(1, min(rows, max_blocks // bpr))
    return groups * bpr, threads


def split_slices(row_packets: int, threads: int) -> list[list[int]]:
    """Packets of a row each block of the split fused kernel stores (its slice): block b owns
    [b * threads, (b + 1) * threads). The CPU tests check that the slices tile the row exactly once."""
    bpr = -(-row_packets // threads)
    return [list(range(b * threads, min((b + 1) * threads, row_packets))) for b in range(bpr)]


def split_full_row(row_packets: int, threads: int, tid: int) -> list[int]:
    """Packets thread `tid` of every block reads in the full-row pass (the kernel's j loop): tid, tid + T,
    ... Every block uses the same mapping and fold order, so each block's sum of squares is bit-identical."""
    return list(range(tid, row_packets, threads))


def fused_grid(rows: int, row_packets: int, sm_count: int, items: int = 4, max_threads: int = 512) -> tuple[int, int]:
    """(blocks, threads) for the fused kernel: a block owns whole rows; one packet per thread while a row
    fits in `max_threads` packets (lowest latency), up to `items` packets per thread beyond."""
    if row_packets < 1 or row_packets > max_threads * items:
        raise ValueError(f"hidden: 1 to {max_threads * items} packets per row, got {row_packets}")
    threads = min(max_threads, -(-row_packets // 32) * 32)
    return max(1, min(rows, sm_count)), threads


# The cluster fused kernel (allreduce_fused_rmsnorm_cluster, variant "cluster", NOT yet run on a GPU): a row
# over the C blocks of one thread-block cluster, one packet per thread, the plain one-shot's 128-thread layout
# (hidden 4096 bf16 = 512 packets -> C = 4 blocks of 128 threads, as the plain one-shot that measured 2.72 us).
FUSED_CLUSTER_MAX = 8  # portable cluster size (16 needs a non-portable opt-in)
FUSED_CLUSTER_THREADS = 128
FUSED_CLUSTER_MAX_THREADS = 1024


def fused_cluster_shape(row_packets: int) -> tuple[int, int]:
    """(C, threads) for one row of the cluster fused kernel: 128 threads while the row fits 8 blocks of
    them, else C = 8 blocks of up to 1024 threads; C = ceil(row_packets / threads), so no block is empty.
    Block b of the cluster owns packets [b * threads, (b + 1) * threads) (split_slices)."""
    top = FUSED_CLUSTER_MAX * FUSED_CLUSTER_MAX_THREADS
    if not 1 <= row_packets <= top:
        raise ValueError(f"hidden: 1 to {top} packets per row for the cluster variant (bf16/fp16 hidden up to "
                         f"{top * 8}, fp32 up to {top * 4}), got {row_packets}")
    if row_packets <= FUSED_CLUSTER_MAX * FUSED_CLUSTER_THREADS:
        threads = FUSED_CLUSTER_THREADS
    else:
        per_block = -(-row_packets // FUSED_CLUSTER_MAX)
        threads = -(-per_block // 32) * 32
    return -(-row_packets // threads), threads


def fused_cluster_grid(rows: int, row_packets: int, max_blocks: int, max_clusters: int = 0) -> tuple[int, int, int]:
    """(clusters, C, threads) for the cluster fused kernel: C blocks of `threads` per row (fused_cluster_shape),
    one cluster per row up to `max_blocks` blocks in all (every block resident, one epoch copy per block) and
    `max_clusters` clusters (0 = no bound; the communicator passes cuOccupancyMaxActiveClusters); clusters
    loop over rows with the cluster count as stride, so clusters <= rows."""
    c, threads = fused_cluster_shape(row_packets)
    if c > max_blocks:
        raise ValueError(f"hidden: a row needs a cluster of {c} blocks, more than the {max_blocks} the grid may use")
    if max_clusters < 0:
        raise ValueError(f"max_clusters must be >= 0, got {max_clusters}")
    clusters = max(1, min(rows, max_blocks // c, max_clusters or max_blocks))
    return clusters, c, threads
