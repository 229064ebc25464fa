"""The radix-tree leaf-LRU cache against a naive reference, and the stack (inclusion) property."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from floorline.replay.cache import PrefixCache


class NaiveLeafLRU:
    """The rules of issue 8 written out directly, O(n) per step: no trie, no heap."""

    def __init__(self, capacity):
        self.capacity = capacity
        self.stamp: dict[tuple, int] = {}  # full prefix path -> last touch
        self.clock = 0

    def admit(self, blocks) -> int:
        paths = [tuple(blocks[: i + 1]) for i in range(len(blocks))]
        hit = 0
        while hit < len(paths) and paths[hit] in self.stamp:
            hit += 1
        for p in paths:
            self.clock += 1
            self.stamp[p] = self.clock
        while self.capacity is not None and len(self.stamp) > self.capacity:
            leaves = [p for p in self.stamp if not any(len(q) == len(p) + 1 and q[:-1] == p for q in self.stamp)]
            del self.stamp[min(leaves, key=self.stamp.__getitem__)]
        return hit


# Prompts drawn from a small tree of contents so that prefixes are shared and caches fill up.
prompts = st.lists(st.lists(st.integers(0, 3), min_size=1, max_size=7), min_size=1, max_size=40)


@settings(max_examples=150, deadline=None)
@given(trace=prompts, capacity=st.integers(1, 12))
def test_matches_naive_reference(trace, capacity):
    fast, slow = PrefixCache(capacity), NaiveLeafLRU(capacity)
    for blocks in trace:
        assert fast.admit(blocks).hit_blocks == slow.admit(blocks)
        assert fast.resident() == set(slow.stamp)
        assert fast.size <= capacity


def _hits(trace, capacity):
    c = PrefixCache(capacity)
    return [c.admit(b).hit_blocks for b in trace], c


@settings(max_examples=200, deadline=None)
@given(trace=prompts, small=st.integers(1, 15), extra=st.integers(1, 15))
def test_hit_ratio_never_decreases_as_cache_grows(trace, small, extra):
    a, b = PrefixCache(small), PrefixCache(small + extra)
    unbounded = PrefixCache(None)
    for blocks in trace:
        ha, hb, hu = a.admit(blocks).hit_blocks, b.admit(blocks).hit_blocks, unbounded.admit(blocks).hit_blocks
        assert ha <= hb <= hu  # per request, hence for the ratio
        assert a.resident() <= b.resident() <= unbounded.resident()  # inclusion: a stack algorithm


@settings(max_examples=100, deadline=None)
@given(trace=prompts, capacity=st.integers(1, 10))
def test_no_block_evicted_while_an_extension_is_cached(trace, capacity):
    c = PrefixCache(capacity)
    for blocks in trace:
        c.admit(blocks)
        res = c.resident()
        assert all(p[:-1] in res for p in res if len(p) > 1)


def test_leading_run_stops_at_first_miss():
    c = PrefixCache(None)
    c.admit([1, 2, 3])
    assert c.lookup([1, 2, 3, 4]) == 3
    assert c.lookup([1, 9, 3]) == 1  # block 3 after a different block 2 is different content
    assert c.lookup([2, 3]) == 0


def test_lru_leaf_goes_first():
    c = PrefixCache(3)
    c.admit([1, 2])  # path A
    c.admit([1, 3])  # path B; touches 1 again
    c.admit([1, 2])  # A is now most recent
    r = c.admit([5])  # over capacity by one: the least recent leaf is [1, 3]
    assert r.evicted == 1
    assert c.resident() == {(1,), (1, 2), (5,)}
