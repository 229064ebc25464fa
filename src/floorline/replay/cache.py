"""A KV prefix cache at block granularity: a radix tree (trie) of blocks with leaf-LRU eviction.

A node is one block *in the context of its prefix* (parent node, block key), so two prompts share a
node only when everything before it matches too. The rules (issue 8):
  - lookup: the hit is the leading run of cached blocks, stopping at the first miss;
  - admit:  after a request's lookup all its blocks are cached and touched, in trace order;
  - evict:  the least recently used *leaf* goes first, so a block is never evicted while a block
            that extends it is cached.

Why this is a stack algorithm (hit ratio never falls as capacity grows): every block of a request is
touched at admission whatever the capacity, so stamps depend on the trace alone. The leaves' last
requests are distinct (only the deepest cached block of a request's path can be a leaf), so "oldest
leaf" orders nodes by (last request through the node, then deepest first) - a priority that is the
same for every capacity and that puts the just-touched path on top. Evicting the lowest priority
under such an order keeps, at every capacity C, exactly the top-C nodes, so the cache of size C is
a subset of the cache of size C+1 (Mattson et al. 1970) and a leading-run hit can only grow.
docs/replay.md has the longer argument; tests/replay/test_replay_cache.py checks it with hypothesis.
"""

from __future__ import annotations

import heapq
from collections.abc import Hashable, Sequence
from dataclasses import dataclass


@dataclass(slots=True)
class AdmitResult:
    hit_blocks: int  # leading run found before admission
    inserted: int  # blocks newly created by this request
    evicted: int  # blocks evicted to make room (may include this request's own tail if it is huge)


class PrefixCache:
    """capacity: max cached blocks, or None for unbounded."""

    __slots__ = ("capacity", "_child", "_parent", "_key", "_nchild", "_stamp", "_alive", "_heap", "_clock",
                 "size", "evicted_total")

    def __init__(self, capacity: int | None):
        if capacity is not None and capacity < 0:
            raise ValueError("capacity must be >= 0 or None")
        self.capacity = capacity
        self._child: dict[tuple[int, Hashable], int] = {}
        self._parent: list[int] = [-1]  # node 0 is the root (empty prefix), never evicted or counted
        self._key: list[Hashable] = [None]
        self._nchild: list[int] = [0]
        self._stamp: list[int] = [0]
        self._alive: list[bool] = [True]
        self._heap: list[tuple[int, int]] = []  # (stamp, node) of leaves; stale entries skipped on pop
        self._clock = 0
        self.size = 0
        self.evicted_total = 0

    def lookup(self, blocks: Sequence[Hashable]) -> int:
        """Leading run of cached blocks; touches nothing."""
        node, n, child = 0, 0, self._child
        for b in blocks:
            node = child.get((node, b), -1)
            if node < 0:
                break
            n += 1
        return n

    def admit(self, blocks: Sequence[Hashable]) -> AdmitResult:
        """Lookup, then cache and touch every block in order, then evict down to capacity."""
        child, stamp = self._child, self._stamp
        node, hit, inserted, missed = 0, 0, 0, False
        for b in blocks:
            self._clock += 1
            nxt = child.get((node, b), -1)
            if nxt < 0:
                missed = True
                nxt = len(self._parent)
                child[(node, b)] = nxt
                self._parent.append(node)
                self._key.append(b)
                self._nchild.append(0)
                stamp.append(self._clock)
                self._alive.append(True)
                self._nchild[node] += 1
                self.size += 1
                inserted += 1
            else:
                stamp[nxt] = self._clock
                if not missed:
                    hit += 1
            node = nxt
        if node and self.capacity is not None:
            heapq.heappush(self._heap, (stamp[node], node))  # the path's tip is the only new leaf
        evicted = self._evict_to_capacity()
        return AdmitResult(hit, inserted, evicted)

    def _evict_to_capacity(self) -> int:
        if self.capacity is None:
            return 0
        n = 0
        heap, stamp, nchild, alive = self._heap, self._stamp, self._nchild, self._alive
        while self.size > self.capacity:
            s, node = heapq.heappop(heap)
            if not alive[node] or nchild[node] or stamp[node] != s:
                continue  # stale: touched again, grew a child, or already gone
            alive[node] = False
            parent = self._parent[node]
            del self._child[(parent, self._key[node])]
            nchild[parent] -= 1
            self.size -= 1
            n += 1
            if parent and nchild[parent] == 0:
                heapq.heappush(heap, (stamp[parent], parent))
        self.evicted_total += n
        return n

    def cached_paths(self) -> set[tuple[int, Hashable]]:
        """(parent, key) edges now cached; tests compare caches of two capacities with this."""
        return set(self._child)

    def resident(self) -> set[tuple]:
        """Every cached block as its full prefix path (tests)."""
        out = set()
        for node in self._child.values():
            path = []
            n = node
            while n:
                path.append(self._key[n])
                n = self._parent[n]
            out.add(tuple(reversed(path)))
        return out
