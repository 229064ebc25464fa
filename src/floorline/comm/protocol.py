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
# - "ticket" (default; what results/nvidia-h200-x2 run 3 measured): one epoch word, bumped by the last
#   block to take an arrival ticket (a device-scope atomic at the end of every multi-block kernel);
# - "replicated" (opt-in): one epoch copy per block index, each launched block advances its share of the
#   copies, no atomic (kernels compiled with FL_EPOCH_REPLICAS; see allreduce_lamport.finish_epoch).
EPOCH_SCHEMES = ("ticket", "replicated")
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
    """Packets written into each receive slot by one call: what the next epoch but one must clear."""
    if algorithm == "oneshot":
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


def fused_grid(rows: int, row_packets: int, sm_count: int, items: int = 4, max_threads: int = 512) -> tuple[int, int]:
    """(blocks, threads) for the fused kernel: a block owns whole rows; one packet per thread while a row
    fits in `max_threads` packets (lowest latency), up to `items` packets per thread beyond."""
    if row_packets < 1 or row_packets > max_threads * items:
        raise ValueError(f"hidden: 1 to {max_threads * items} packets per row, got {row_packets}")
    threads = min(max_threads, -(-row_packets // 32) * 32)
    return max(1, min(rows, sm_count)), threads
