"""NCCL driven from one host thread over every GPU: thread mode's hand-off for large messages.

torch.distributed needs one process per GPU, so thread mode cannot use it. NCCL itself can drive
several GPUs from one thread: `ncclCommInitAll` makes one communicator per GPU in this process, and
each collective is one NCCL group (groupStart, one allReduce per GPU, groupEnd). CuPy's binding
(`cupy.cuda.nccl`: `NcclCommunicator.initAll`, `groupStart`, `groupEnd`) exposes exactly that.

Thread mode calls every rank in turn from one thread; rank r's call records its buffers and stream, and
the last rank's call issues the group on every GPU's stream. To capture it in CUDA graphs, capture every
GPU's graph at the same time (`floorline.bench.allreduce.capture_all`), so the group lands in all of them.
"""

from __future__ import annotations

from collections.abc import Sequence

from floorline.comm.errors import CommError

NCCL_SUM = 0  # ncclSum
NCCL_DTYPE = {"float16": 6, "float32": 7, "bfloat16": 9}  # ncclFloat16, ncclFloat32, ncclBfloat16 (nccl.h)


def unavailable_reason() -> str | None:
    """None when CuPy's NCCL binding with initAll and group calls can be used here, else why not."""
    try:
        from cupy.cuda import nccl
    except Exception as e:  # noqa: BLE001 - any import failure means: no single-thread NCCL here
        return f"CuPy's NCCL binding is not importable ({type(e).__name__}: {e})"[:300]
    if not getattr(nccl, "available", True):
        return "CuPy is installed but found no NCCL library"
    missing = [a for a in ("groupStart", "groupEnd") if not hasattr(nccl, a)]
    if not hasattr(nccl.NcclCommunicator, "initAll"):
        missing.append("NcclCommunicator.initAll")
    return f"cupy.cuda.nccl lacks {', '.join(missing)}" if missing else None


class ThreadNccl:
    """One NCCL communicator per GPU of this process, all driven from the calling thread."""

    def __init__(self, devices: Sequence[int]) -> None:
        from cupy.cuda import nccl

        self._nccl = nccl
        self.devices = list(devices)
        self.world = len(self.devices)
        self._comms = nccl.NcclCommunicator.initAll(self.devices)
        self._pending: dict[int, tuple[int, int, int, int, int]] = {}
        self.version = nccl.get_version()

    def all_reduce(self, rank: int, x_ptr: int, out_ptr: int, count: int, dtype: str, stream: int) -> None:
        """Rank `rank`'s share of one sum all-reduce; the last rank to call issues the group for all."""
        if rank in self._pending:
            self._pending.clear()
            raise CommError(f"rank {rank}: called the NCCL all-reduce again before every rank called it once "
                            "(thread mode calls every rank in turn)")
        self._pending[rank] = (x_ptr, out_ptr, count, NCCL_DTYPE[dtype], stream)
        if len(self._pending) < self.world:
            return
        pend, self._pending = self._pending, {}
        if len({(p[2], p[3]) for p in pend.values()}) != 1:
            raise CommError("NCCL all-reduce: ranks called with different sizes or dtypes")
        self._nccl.groupStart()
        try:
            for r in range(self.world):
                x, o, n, dt, s = pend[r]
                self._comms[r].allReduce(x, o, n, dt, NCCL_SUM, s)
        finally:
            self._nccl.groupEnd()

    def close(self) -> None:
        """Destroy the clique. Destroy every CUDA graph that captured it first: a captured NCCL call holds a
        reference on its communicator, and ncclCommDestroy waits for it (on the device, a close with the
        graphs still alive hung)."""
        for c in self._comms:
            c.destroy()
        self._comms = []
