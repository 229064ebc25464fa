"""Shadow memory for CPU runs: which code wrote each byte the candidate's kernels read and return.

On the CPU, Triton runs in its interpreter, and every `tl.load`/`tl.store`/atomic goes through one Python
builder with raw addresses. The worker hooks those and the torch dispatcher, and keeps, per byte of every
tensor it has seen, a tag and the value last written by a traced writer:

  SOURCE  the call's inputs and the model's load-time parameters, and anything the dispatcher computed from
          SOURCE bytes only
  OWN     a store by one of the candidate's own kernels, or dispatcher output computed from OWN/SOURCE bytes
  FOREIGN written by something the harness cannot trace back to the inputs: another file's kernel, a host
          scalar (`fill_`), a tensor built from Python data (`torch.tensor(list)`)
  (0)     never written by a traced writer: poisoned allocations, numpy-made memory

Two verdicts come out of it (checks.py turns them into failure classes):
- coverage: every output byte must be tagged OWN (or SOURCE: a zero fill, a glue copy of an input) and still
  hold the value recorded when it was written. Work
  done on the host and returned (numpy, Python loops), or written over a token kernel's output afterwards
  (through a numpy view or a raw pointer), fails this: `ghost_kernel`.
- provenance: every byte an own kernel loads must be SOURCE or OWN and hold the recorded value. A Triton "copy
  kernel" that moves host-computed data into the output reads untraced bytes: `host_compute`.

The failure direction is the safe one: a candidate that removes the hooks leaves its outputs untagged and is
rejected. What it cannot be made safe against is forging records from inside the process (the worker is the
candidate's process); docs/kernelenv.md lists that as tamper-evident, not tamper-proof.
"""

from __future__ import annotations

import bisect
from typing import Any

import numpy as np

UNWRITTEN, SOURCE, OWN, FOREIGN = 0, 1, 2, 3
# views share their source's bytes: nothing new is written
VIEW_OPS = frozenset({
    "view", "_unsafe_view", "reshape", "as_strided", "t", "transpose", "permute", "expand", "detach", "alias",
    "select", "slice", "unsqueeze", "squeeze", "flatten", "unflatten", "split", "split_with_sizes", "chunk",
    "unbind", "narrow", "view_as", "_reshape_alias", "unsafe_split", "lift_fresh", "set_", "resize_",
    "_local_scalar_dense", "is_nonzero", "empty", "empty_like", "empty_strided", "new_empty", "new_empty_strided",
    "empty_permuted",
})
# constants that carry no host data: a zero or a range cannot smuggle a computed answer
CONST_OPS = frozenset({"zeros", "zeros_like", "new_zeros", "zero_", "arange"})


def elem_offsets(shape: tuple[int, ...], stride: tuple[int, ...], offset: int) -> np.ndarray:
    idx = np.asarray(offset, dtype=np.int64)
    for s, st in zip(shape, stride, strict=True):
        idx = idx[..., None] + np.arange(s, dtype=np.int64) * st
    return idx.reshape(-1)


class Region:
    __slots__ = ("base", "nbytes", "tag", "val")

    def __init__(self, base: int, nbytes: int) -> None:
        self.base, self.nbytes = base, nbytes
        self.tag = np.zeros(nbytes, dtype=np.uint8)
        self.val = np.zeros(nbytes, dtype=np.uint8)


class Shadow:
    def __init__(self, read_bytes: Any) -> None:
        self._read = read_bytes  # addresses (uint64) -> their current bytes (uint8), through the interpreter's loader
        self.starts: list[int] = []
        self.regions: list[Region] = []
        self.untraced_loads = 0
        self.own_loads = 0
        self.first_untraced: str | None = None

    # -- regions -------------------------------------------------------------------------------------
    def region(self, base: int, nbytes: int, fresh: bool = False) -> Region:
        i = bisect.bisect_right(self.starts, base) - 1
        if not fresh and i >= 0 and self.regions[i].base <= base < self.regions[i].base + self.regions[i].nbytes:
            r = self.regions[i]
            if base + nbytes <= r.base + r.nbytes:
                return r
        # a new (or larger, reallocated) storage replaces anything it overlaps
        keep = [(s, r) for s, r in zip(self.starts, self.regions, strict=True)
                if r.base + r.nbytes <= base or r.base >= base + nbytes]
        r = Region(base, nbytes)
        keep.append((base, r))
        keep.sort(key=lambda p: p[0])
        self.starts = [s for s, _ in keep]
        self.regions = [r for _, r in keep]
        return r

    def _locate(self, addrs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """For byte addresses: the index of the region holding each (-1 if none) and the offset in it."""
        if not self.starts:
            return np.full(addrs.shape, -1, np.int64), np.zeros(addrs.shape, np.int64)
        starts = np.asarray(self.starts, dtype=np.uint64)
        ends = np.asarray([r.base + r.nbytes for r in self.regions], dtype=np.uint64)
        i = np.searchsorted(starts, addrs, side="right").astype(np.int64) - 1
        ok = (i >= 0) & (addrs < ends[np.maximum(i, 0)])
        i = np.where(ok, i, -1)
        off = np.where(ok, addrs - starts[np.maximum(i, 0)], 0).astype(np.int64)
        return i, off

    def lookup(self, addrs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        idx, off = self._locate(addrs)
        tag = np.zeros(addrs.shape, np.uint8)
        val = np.zeros(addrs.shape, np.uint8)
        for k in np.unique(idx[idx >= 0]):
            m = idx == k
            r = self.regions[int(k)]
            tag[m] = r.tag[off[m]]
            val[m] = r.val[off[m]]
        return tag, val

    def write(self, addrs: np.ndarray, tag: np.ndarray | int, val: np.ndarray) -> None:
        idx, off = self._locate(addrs)
        tag = np.broadcast_to(np.asarray(tag, np.uint8), addrs.shape)
        for k in np.unique(idx[idx >= 0]):
            m = idx == k
            r = self.regions[int(k)]
            r.tag[off[m]] = tag[m]
            r.val[off[m]] = val[m]

    # -- tensors ---------------------------------------------------------------------------------------
    @staticmethod
    def byte_addrs(t: Any) -> np.ndarray:
        st = t.untyped_storage()
        es = t.element_size()
        el = elem_offsets(tuple(t.shape), tuple(t.stride()), t.storage_offset())
        return (np.uint64(st.data_ptr()) + (el[:, None] * es + np.arange(es)).reshape(-1).astype(np.uint64))

    def track(self, t: Any) -> np.ndarray:
        st = t.untyped_storage()
        self.region(int(st.data_ptr()), int(st.nbytes()))
        return self.byte_addrs(t)

    def seed(self, t: Any, values: np.ndarray | None = None) -> None:
        """Register a SOURCE tensor: its current bytes (or the given snapshot) are what a kernel may read."""
        if t.numel() == 0:
            return
        a = self.track(t)
        self.write(a, SOURCE, self._read(a) if values is None else values)

    def fresh(self, t: Any) -> None:
        """A new allocation: its bytes hold nothing traced, whatever an earlier tensor left there."""
        st = t.untyped_storage()
        self.region(int(st.data_ptr()), int(st.nbytes()), fresh=True)

    def source_tag(self, sources: list[Any]) -> int:
        """The tag of data computed from `sources`: SOURCE if all are valid SOURCE bytes, OWN if valid OWN/SOURCE,
        else FOREIGN (no tensor source at all means host data: a Python scalar or list)."""
        worst = 0
        for s in sources:
            if s.numel() == 0:
                continue
            a = self.byte_addrs(s)
            t, v = self.lookup(a)
            valid = (t != UNWRITTEN) & (v == self._read(a))
            worst = max(worst, int(np.where(valid, t, FOREIGN).max()))
        return FOREIGN if worst == 0 else worst

    def mark(self, dests: list[Any], tag: int) -> None:
        for d in dests:
            if d.numel():
                a = self.track(d)
                self.write(a, tag, self._read(a))

    # -- kernel memory traffic -------------------------------------------------------------------------
    def kernel_store(self, elem_addrs: np.ndarray, itemsize: int, own: bool) -> None:
        if elem_addrs.size == 0:
            return
        a = (elem_addrs.astype(np.uint64)[:, None] + np.arange(itemsize, dtype=np.uint64)).reshape(-1)
        self.write(a, OWN if own else FOREIGN, self._read(a))

    def kernel_load(self, elem_addrs: np.ndarray, itemsize: int, loaded: np.ndarray) -> None:
        if elem_addrs.size == 0:
            return
        a = (elem_addrs.astype(np.uint64)[:, None] + np.arange(itemsize, dtype=np.uint64)).reshape(-1)
        got = np.ascontiguousarray(loaded).view(np.uint8).reshape(-1)
        tag, val = self.lookup(a)
        bad = ~(((tag == SOURCE) | (tag == OWN)) & (val == got))
        self.own_loads += int(a.size)
        n = int(bad.sum())
        if n:
            self.untraced_loads += n
            if self.first_untraced is None:
                k = int(np.argmax(bad))
                what = {UNWRITTEN: "memory no traced writer filled", FOREIGN: "data written outside the traced path"}
                self.first_untraced = (what.get(int(tag[k]), "bytes changed after they were traced")
                                       + f" (tag {int(tag[k])}, address 0x{int(a[k]):x})")

    def coverage(self, t: Any) -> dict[str, int]:
        """How the bytes of a returned tensor came to hold their values."""
        if t.numel() == 0:
            return {"bytes": 0, "own": 0, "unwritten": 0, "foreign": 0, "changed": 0}
        a = self.byte_addrs(t)
        tag, val = self.lookup(a)
        same = val == self._read(a)
        # SOURCE counts too: zeros from the dispatcher, or a glue copy of an input, are traced (a pass-through
        # half of an output is honest); host data can never carry SOURCE
        return {"bytes": int(a.size), "own": int((((tag == OWN) | (tag == SOURCE)) & same).sum()),
                "unwritten": int((tag == UNWRITTEN).sum()), "foreign": int((tag == FOREIGN).sum()),
                "changed": int(((tag != UNWRITTEN) & ~same).sum())}
