"""Streaming read, write and copy: the HBM ceiling every memory-bound kernel is divided by.

A persistent grid walks the buffer in strides of grid x BLOCK x UNROLL int32 elements. The read
kernel folds what it loads into one value per program and stores it, so the loads cannot be
removed; each UNROLL step issues its loads before any of them is used, which is what keeps enough
bytes in flight per SM (Little's law: ~35 B/ns per SM x ~700 ns of latency on an H200).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import triton
import triton.language as tl

OPS = ("read", "write", "copy")


@dataclass(frozen=True)
class StreamConfig:
    block: int = 4096  # int32 elements per program per step
    num_warps: int = 8
    unroll: int = 2
    ctas_per_sm: int = 4
    cache: str = ""  # "" | ".cg" (cache in L2 only) | "evict_first" (streaming: L2 evicts these lines first)

    def label(self) -> str:
        return f"block={self.block} warps={self.num_warps} unroll={self.unroll} ctas/SM={self.ctas_per_sm} cache={self.cache or 'default'}"


@triton.jit
def _read_kernel(x_ptr, out_ptr, n, BLOCK: tl.constexpr, UNROLL: tl.constexpr, CACHE: tl.constexpr,
                 EVICT: tl.constexpr):
    pid = tl.program_id(0)
    step = tl.num_programs(0) * BLOCK * UNROLL
    acc = tl.zeros([BLOCK], dtype=tl.int32)
    for start in range(pid * BLOCK * UNROLL, n, step):
        for u in tl.static_range(UNROLL):
            offs = start + u * BLOCK + tl.arange(0, BLOCK)
            acc ^= tl.load(x_ptr + offs, mask=offs < n, other=0, cache_modifier=CACHE, eviction_policy=EVICT)
    tl.store(out_ptr + pid, tl.reduce(acc, 0, _xor))


@triton.jit
def _xor(a, b):
    return a ^ b


@triton.jit
def _write_kernel(y_ptr, n, value, BLOCK: tl.constexpr, UNROLL: tl.constexpr, CACHE: tl.constexpr):
    pid = tl.program_id(0)
    step = tl.num_programs(0) * BLOCK * UNROLL
    v = tl.full([BLOCK], value, dtype=tl.int32)
    for start in range(pid * BLOCK * UNROLL, n, step):
        for u in tl.static_range(UNROLL):
            offs = start + u * BLOCK + tl.arange(0, BLOCK)
            tl.store(y_ptr + offs, v, mask=offs < n, cache_modifier=CACHE)


@triton.jit
def _copy_kernel(x_ptr, y_ptr, n, BLOCK: tl.constexpr, UNROLL: tl.constexpr, CACHE: tl.constexpr,
                 EVICT: tl.constexpr):
    pid = tl.program_id(0)
    step = tl.num_programs(0) * BLOCK * UNROLL
    for start in range(pid * BLOCK * UNROLL, n, step):
        for u in tl.static_range(UNROLL):
            offs = start + u * BLOCK + tl.arange(0, BLOCK)
            x = tl.load(x_ptr + offs, mask=offs < n, other=0, cache_modifier=CACHE, eviction_policy=EVICT)
            tl.store(y_ptr + offs, x, mask=offs < n)


def _grid(n: int, cfg: StreamConfig, sm_count: int) -> int:
    return max(1, min(cfg.ctas_per_sm * sm_count, triton.cdiv(n, cfg.block * cfg.unroll)))


def stream_read(x: Any, out: Any, cfg: StreamConfig, sm_count: int) -> Any:
    """XOR of every int32 of x, one partial per program into out (len >= grid). Returns out."""
    n = x.numel()
    _read_kernel[(_grid(n, cfg, sm_count),)](x, out, n, BLOCK=cfg.block, UNROLL=cfg.unroll,
                                             CACHE=_load_hint(cfg.cache), EVICT=_evict(cfg.cache), num_warps=cfg.num_warps)
    return out


def stream_write(y: Any, value: int, cfg: StreamConfig, sm_count: int) -> Any:
    n = y.numel()
    _write_kernel[(_grid(n, cfg, sm_count),)](y, n, value, BLOCK=cfg.block, UNROLL=cfg.unroll,
                                              CACHE=_store_hint(cfg.cache), num_warps=cfg.num_warps)
    return y


def stream_copy(x: Any, y: Any, cfg: StreamConfig, sm_count: int) -> Any:
    n = x.numel()
    _copy_kernel[(_grid(n, cfg, sm_count),)](x, y, n, BLOCK=cfg.block, UNROLL=cfg.unroll,
                                             CACHE=_load_hint(cfg.cache), EVICT=_evict(cfg.cache), num_warps=cfg.num_warps)
    return y


# Loads take .ca/.cg/.cv as cache modifiers (not .cs) and "evict_first" as an eviction policy; stores
# take .cs (streaming) for the same intent.
def _load_hint(cache: str) -> str:
    return ".cg" if cache == ".cg" else ""


def _evict(cache: str) -> str:
    return "evict_first" if cache == "evict_first" else ""


def _store_hint(cache: str) -> str:
    return {".cg": ".cg", "evict_first": ".cs"}.get(cache, "")
