"""`Communicator`: one rank's handle on the push all-reduce kernels.

Create it once (buffers are registered at creation, never per call), then call it every layer:

    comm = floorline.comm.init_process()                 # one process per GPU (torch.distributed bootstrap)
    comms = floorline.comm.init_threads([0, 1])          # or: one process, one host thread, every GPU

    y = comm.all_reduce(x)                                           # sum over ranks, same dtype as x
    out, residual = comm.all_reduce_residual_rmsnorm(x, residual, weight, eps=1e-6)

Every call launches one kernel on torch's current stream of the communicator's device, with no host
synchronisation, so calls can be captured in a CUDA graph and replayed any number of times: the epoch
that picks the Lamport buffer lives in device memory and advances inside the kernel. Kernels that wait
longer than `timeout_s` for a peer give up and flag a host-visible status word; `check()` (cheap, no
sync) and `synchronize()` turn that flag into a CommTimeout naming the peer.
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from floorline.comm import choice, cuda_api, protocol
from floorline.comm.errors import CommError, CommTimeout
from floorline.errors import InputError
from floorline.kernels import (
    allreduce_fused_rmsnorm,
    allreduce_fused_rmsnorm_cluster,
    allreduce_fused_rmsnorm_light,
    allreduce_fused_rmsnorm_split,
    allreduce_oneshot,
    allreduce_pingpong,
    allreduce_twoshot,
)

_OPS = {
    "oneshot": allreduce_oneshot,
    "twoshot": allreduce_twoshot,
    "fused": allreduce_fused_rmsnorm,
    "fused_light": allreduce_fused_rmsnorm_light,
    "fused_split": allreduce_fused_rmsnorm_split,
    "fused_cluster": allreduce_fused_rmsnorm_cluster,
    "pingpong": allreduce_pingpong,
}
# fused all-reduce + residual + RMSNorm kernels: "split" (a row over several blocks; the default since
# round A), "block" (one block per row: the run-3 / round-0 default), "light" (one block per row, one barrier),
# "cluster" (a row over one thread-block cluster, partials through DSMEM; sm_90+, not yet run on a GPU)
FUSED_VARIANTS = ("default", "split", "block", "light", "cluster")
FUSED_DEFAULT = "split"
_FUSED_OP = {"split": "fused_split", "block": "fused", "light": "fused_light", "cluster": "fused_cluster"}
# prepended to every all-reduce kernel's source for the replicated-epoch scheme (see allreduce_lamport)
REPLICATED_DEFINES = f"#define FL_EPOCH_REPLICAS 1\n#define CTRL_BYTES {protocol.REPLICATED_CTRL_BYTES}\n"


@dataclass(frozen=True)
class CommConfig:
    max_bytes: int = 64 << 20  # largest message the kernels carry (two-shot); beyond it NCCL or an error
    oneshot_max_bytes: int = 2 << 20  # largest one-shot message the slots are sized for (crossover.toml, world 2)
    timeout_s: float = 10.0  # a kernel gives up waiting for a peer after this long
    # "replicated" (default: per-block epoch copies, no arrival atomic at the end of multi-block kernels) or
    # "ticket" (the run-3 default; see protocol.EPOCH_SCHEMES for the measurements). Every kernel of one
    # communicator uses the same scheme: the two cannot share a region (each keeps its own epoch words).
    epoch: str = "replicated"
    # "" = the library's crossover.toml; else a candidate file from `bench allreduce --tune-crossover`
    # (its [world.N.<mode>] sub-table, when present, applies to this communicator's mode)
    crossover_file: str = ""
    # threads per block of the one-shot/two-shot kernels: 0 = by message size (protocol.block_threads_for,
    # with the measurements behind the rule), else fixed (a multiple of 32 up to 512; bench variants use it)
    block_threads: int = 0

    def __post_init__(self) -> None:
        if self.block_threads and not (32 <= self.block_threads <= 512 and self.block_threads % 32 == 0):
            raise InputError(f"block_threads: must be 0 (by size) or a multiple of 32 from 32 to 512, "
                             f"got {self.block_threads}")
        if self.epoch not in protocol.EPOCH_SCHEMES:
            raise InputError(f"epoch: must be one of {', '.join(protocol.EPOCH_SCHEMES)}, got {self.epoch!r}")
        if self.crossover_file:
            if not Path(self.crossover_file).is_file():
                raise InputError(f"crossover_file: no such file: {self.crossover_file}")


@dataclass
class Registration:
    """What one rank holds: its region, every rank's region as mapped here, and the host status word."""

    region: int
    peers: list[int]
    status_host: int
    status_dev: int
    release: list[Any] = field(default_factory=list)  # callables run by close(), in order


def _dtype_name(dtype: Any) -> str:
    name = str(dtype).removeprefix("torch.")
    if name not in protocol.ELEM_BYTES:
        raise InputError(f"x: dtype must be one of bfloat16, float16, float32, got {name}")
    return name


class Communicator:
    def __init__(
        self,
        *,
        rank: int,
        world: int,
        device: int,
        mode: str,
        layout: protocol.Layout,
        reg: Registration,
        config: CommConfig,
        nccl_group: Any = None,
        thread_nccl: Any = None,
        nccl_note: str = "",
    ) -> None:
        import torch

        protocol.check_world(world)
        self.rank, self.world, self.device, self.mode = rank, world, device, mode
        self.layout, self.config, self.nccl_group = layout, config, nccl_group
        # thread mode: NCCL over every GPU from this thread (floorline.comm.thread_nccl), shared by all ranks
        self.thread_nccl = thread_nccl
        self.nccl_note = nccl_note  # why there is no NCCL hand-off, when there is none
        self._reg = reg
        cap = torch.cuda.get_device_capability(device)
        self.arch = f"sm_{cap[0]}{cap[1]}"
        self.sm_count = torch.cuda.get_device_properties(device).multi_processor_count
        self.crossover = (choice.crossover(world, Path(config.crossover_file), mode) if config.crossover_file
                          else choice.crossover(world))
        self._timeout_ns = int(config.timeout_s * 1e9)
        self._probe_base = 0
        self._broken: str | None = None
        self._fns: dict[tuple[str, str], Any] = {}
        self._cluster_occupancy: dict[tuple[str, int], int] = {}  # (dtype, threads) -> resident clusters of 8
        for op in ("oneshot", "twoshot", "fused", "fused_light", "fused_split"):  # compile and load now, never inside a capture
            for dt in protocol.KERNEL_SUFFIX:
                self._fn(op, dt)
        self._fn("pingpong", "")
        self._cluster_refused: dict[tuple[str, int], str] = {}
        # the "cluster" fused variant needs thread-block clusters (sm_90 and newer: its PTX, barrier.cluster and
        # mapa, does not compile for older GPUs). It is opt-in and has not run on a GPU yet, so a failure to
        # compile it or to ask its occupancy only disables it, with the reason, and never the kernels above.
        self.cluster_unavailable: str | None = None
        if cap[0] < 9:
            self.cluster_unavailable = f"needs thread-block clusters (sm_90 or newer), this GPU is {self.arch}"
        else:
            try:
                for dt in protocol.KERNEL_SUFFIX:
                    self._fn("fused_cluster", dt)
                self._query_cluster_occupancy()
            except Exception as e:  # noqa: BLE001 - see above
                self.cluster_unavailable = f"could not be set up on this {self.arch}: {type(e).__name__}: {str(e)[:200]}"
        self.has_clusters = self.cluster_unavailable is None

    # ---- kernels -------------------------------------------------------------------------------
    def _fn(self, op: str, dtype: str) -> Any:
        key = (op, dtype)
        fn = self._fns.get(key)
        if fn is None:
            mod = _OPS[op]
            kernel = mod.NAME if op == "pingpong" else f"{mod.NAME}_{protocol.KERNEL_SUFFIX[dtype]}"
            source, module = mod.SOURCE, mod.NAME
            if self.config.epoch == "replicated" and op != "pingpong":
                source, module = REPLICATED_DEFINES + source, f"{mod.NAME}+replicated"
            fn = cuda_api.function(self.device, source, module, kernel, self.arch)
            self._fns[key] = fn
        return fn

    def kernel_attributes(self, op: str, dtype: str = "bfloat16") -> dict[str, int]:
        return cuda_api.function_attributes(self._fn(op, "" if op == "pingpong" else dtype))

    def _grid_limit(self) -> int:
        """Most blocks a kernel may use: one per SM (all resident), and one epoch copy per block index in
        the replicated scheme."""
        return min(self.sm_count, protocol.MAX_REPLICAS) if self.config.epoch == "replicated" else self.sm_count

    def threads_for(self, npk: int) -> int:
        """Threads per block of the one-shot/two-shot kernels for an `npk`-packet message."""
        return self.config.block_threads or protocol.block_threads_for(npk, self._grid_limit())

    def _stream(self) -> int:
        import torch

        return torch.cuda.current_stream(self.device).cuda_stream

    def _common_args(self) -> list[cuda_api.Arg]:
        A = cuda_api.Arg
        return [
            A("peers", self._reg.peers),
            A("u32", self.rank),
            A("u32", self.world),
            A("u64", self.layout.slot_bytes),
            A("u64", self._reg.status_dev),
            A("u64", self._timeout_ns),
        ]

    def _check_tensor(self, name: str, t: Any, like: Any = None) -> None:
        if not t.is_cuda or t.device.index != self.device:
            raise InputError(f"{name}: must be on cuda:{self.device} (this rank's GPU), got {t.device}")
        if not t.is_contiguous():
            raise InputError(f"{name}: must be contiguous")
        if t.data_ptr() % protocol.PACKET_BYTES:
            raise InputError(f"{name}: data must start 16-byte aligned (a fresh tensor, not an offset view)")
        if like is not None and (t.dtype != like.dtype or t.numel() != like.numel()):
            raise InputError(f"{name}: must match x ({like.dtype}, {like.numel()} elements), got {t.dtype}, {t.numel()}")

    # ---- public API ----------------------------------------------------------------------------
    def choose(self, nbytes: int) -> str:
        """The algorithm `all_reduce(..., algorithm='auto')` uses for a message of `nbytes`."""
        return choice.choose(nbytes, self.world, self.has_nccl, self.crossover)

    @property
    def has_nccl(self) -> bool:
        """A NCCL hand-off exists: a process group (process mode) or single-thread NCCL (thread mode)."""
        return self.nccl_group is not None or self.thread_nccl is not None

    def all_reduce(self, x: Any, out: Any = None, algorithm: str = "auto") -> Any:
        """Sum of x over all ranks (fp32 accumulation, x's dtype out), on torch's current stream.

        algorithm: 'auto' (by size, crossover.toml), 'oneshot', 'twoshot' or 'nccl' (process mode with a NCCL
        group, or thread mode with CuPy's NCCL: there the last rank's call issues the group for every GPU).
        Every rank must make the same sequence of calls with the same sizes.
        """
        import torch

        self._ensure_usable()
        dt = _dtype_name(x.dtype)
        self._check_tensor("x", x)
        out = torch.empty_like(x) if out is None else out
        self._check_tensor("out", out, like=x)
        n = x.numel()
        if n == 0:
            return out
        eb = protocol.ELEM_BYTES[dt]
        alg = self.choose(n * eb) if algorithm == "auto" else algorithm
        if alg not in choice.CHOICES:
            raise InputError(f"algorithm: must be one of auto, {', '.join(choice.CHOICES)}, got {algorithm!r}")
        if alg != "nccl" and not self.layout.fits(alg, n, eb):
            if algorithm == "auto" and alg == "oneshot" and self.layout.fits("twoshot", n, eb):
                alg = "twoshot"  # slots sized below the crossover: the next algorithm up still fits
            elif algorithm == "auto" and self.has_nccl:
                alg = "nccl"
            else:
                cap = self.layout.max_elems(alg, eb) * eb
                raise InputError(f"x: {n * eb} bytes exceed the registered {alg} capacity of {cap} bytes; "
                                 "create the communicator with a larger max_bytes")
        if alg == "nccl":
            if self.thread_nccl is not None:
                self.thread_nccl.all_reduce(self.rank, x.data_ptr(), out.data_ptr(), n, dt, self._stream())
                return out
            if self.nccl_group is None:
                raise InputError("algorithm: 'nccl' needs process mode with a NCCL group, or thread mode with "
                                 f"CuPy's NCCL ({self.nccl_note or 'not enabled'})")
            import torch.distributed as dist

            out.copy_(x)
            dist.all_reduce(out, group=self.nccl_group)
            return out
        npk = protocol.packets(n, eb)
        blocks, threads = protocol.grid(npk, self._grid_limit(), self.threads_for(npk))
        cuda_api.context(self.device)
        A = cuda_api.Arg
        args = [A("u64", x.data_ptr()), A("u64", out.data_ptr()), A("u64", n), *self._common_args()]
        cuda_api.launch(self._fn(alg, dt), blocks, threads, self._stream(), args)
        return out

    def all_reduce_residual_rmsnorm(
        self, x: Any, residual: Any, weight: Any, eps: float = 1e-6, out: Any = None, residual_out: Any = None,
        variant: str = "default",
    ) -> tuple[Any, Any]:
        """One kernel: h = residual + all_reduce(x); returns (rmsnorm(h) * weight, h).

        x, residual: [tokens, hidden] (or [hidden]); weight: [hidden]; all the same dtype. `residual_out`
        may be `residual` itself (in-place update, as a decoder layer wants). hidden must be a multiple of
        8 (bf16/fp16) or 4 (fp32), at most 16384 (bf16/fp16) or 8192 (fp32).
        variant: 'default' (= 'split': each row spread over up to 4 blocks, see allreduce_fused_rmsnorm_split),
        'block' (one block per row, the earlier default), 'light' (one block per row, one packet per thread:
        hidden at most 8192 bf16/fp16 or 4096 fp32) or 'cluster' (a row over one thread-block cluster, sm_90+,
        see allreduce_fused_rmsnorm_cluster; not yet run on a GPU). out and residual_out must not overlap x;
        residual_out may be residual itself, out must not be.
        """
        import torch

        self._ensure_usable()
        if variant not in FUSED_VARIANTS:
            raise InputError(f"variant: must be one of {', '.join(FUSED_VARIANTS)}, got {variant!r}")
        dt = _dtype_name(x.dtype)
        eb = protocol.ELEM_BYTES[dt]
        hidden = x.shape[-1]
        per = protocol.elems_per_packet(eb)
        if hidden % per:
            raise InputError(f"x: hidden size must be a multiple of {per} for {dt}, got {hidden}")
        self._check_tensor("x", x)
        self._check_tensor("residual", residual, like=x)
        if weight.numel() != hidden or weight.dtype != x.dtype:
            raise InputError(f"weight: must be [{hidden}] {x.dtype}, got {list(weight.shape)} {weight.dtype}")
        self._check_tensor("weight", weight)
        out = torch.empty_like(x) if out is None else out
        residual_out = torch.empty_like(x) if residual_out is None else residual_out
        self._check_tensor("out", out, like=x)
        self._check_tensor("residual_out", residual_out, like=x)
        rows = x.numel() // hidden
        if rows == 0:
            return out, residual_out
        row_pk = hidden // per
        if not self.layout.fits("oneshot", x.numel(), eb):
            raise InputError(f"x: {x.numel() * eb} bytes exceed the one-shot capacity of "
                             f"{self.layout.max_elems('oneshot', eb) * eb} bytes")
        if variant == "default":  # the split kernel holds rows up to 1024 packets; wider ones go one block per row
            variant = FUSED_DEFAULT if row_pk <= protocol.FUSED_ITEMS * allreduce_fused_rmsnorm_split.THREADS_MAX \
                else "block"
        if variant == "cluster" and not self.has_clusters:
            raise InputError(f"variant: 'cluster' {self.cluster_unavailable}")
        if variant in ("split", "cluster") and (_overlaps(out, x) or _overlaps(out, residual)
                                                or _overlaps(residual_out, x)):
            raise InputError("out: must not overlap x or residual, and residual_out must not overlap x "
                             "(residual_out may be residual itself)")
        cluster = 0
        try:
            if variant == "cluster":
                cluster, threads = protocol.fused_cluster_shape(row_pk)
                clusters, cluster, threads = protocol.fused_cluster_grid(
                    rows, row_pk, self._grid_limit(), self._max_clusters(dt, cluster, threads))
                blocks = clusters * cluster
            elif variant == "split":
                blocks, threads = protocol.fused_split_grid(rows, row_pk, self._grid_limit())
            elif variant == "light":
                blocks, threads = protocol.fused_light_grid(rows, row_pk, self._grid_limit())
            else:
                blocks, threads = protocol.fused_grid(rows, row_pk, self._grid_limit(), allreduce_fused_rmsnorm.ITEMS)
        except ValueError as e:
            raise InputError(f"x: {e}") from None
        cuda_api.context(self.device)
        A = cuda_api.Arg
        args = [
            A("u64", x.data_ptr()),
            A("u64", residual.data_ptr()),
            A("u64", weight.data_ptr()),
            A("u64", out.data_ptr()),
            A("u64", residual_out.data_ptr()),
            A("u64", rows),
            A("u64", hidden),
            A("f32", eps),
            *self._common_args(),
        ]
        if cluster:
            cuda_api.launch_cluster(self._fn(_FUSED_OP[variant], dt), blocks, cluster, threads, self._stream(), args,
                                    f"fused variant 'cluster', clusters of {cluster} x {threads} threads")
        else:
            cuda_api.launch(self._fn(_FUSED_OP[variant], dt), blocks, threads, self._stream(), args)
        return out, residual_out

    def _query_cluster_occupancy(self) -> None:
        """Resident-cluster bounds for the cluster fused kernel, asked once here (never inside a capture):
        every block waits on a peer's block, so all of a grid's clusters must be resident at once. Asked for
        the largest cluster (8 blocks) at 128 and 1024 threads; a cluster of C <= 8 blocks of T <= T' threads
        needs no more of a GPC than one of 8 blocks of T' threads, so these bound every shape the grid rule
        makes. A refused query only disables those shapes (the message is raised when one is asked for)."""
        c = protocol.FUSED_CLUSTER_MAX
        cuda_api.context(self.device)  # the query runs in the current context (the kernels may come from a cache)
        for dt in protocol.KERNEL_SUFFIX:
            for t in (protocol.FUSED_CLUSTER_THREADS, protocol.FUSED_CLUSTER_MAX_THREADS):
                try:
                    n = cuda_api.max_active_clusters(self._fn("fused_cluster", dt), c, t,
                                                     f"fused variant 'cluster', {c} x {t} threads")
                except CommError as e:
                    self._cluster_refused[(dt, t)] = str(e)
                    n = 0
                self._cluster_occupancy[(dt, t)] = n

    def _max_clusters(self, dtype: str, cluster: int, threads: int) -> int:
        """Most clusters of the cluster fused kernel resident at once for this shape (see above)."""
        t = protocol.FUSED_CLUSTER_THREADS if threads <= protocol.FUSED_CLUSTER_THREADS \
            else protocol.FUSED_CLUSTER_MAX_THREADS
        n = self._cluster_occupancy[(dtype, t)]
        if n < 1:
            why = self._cluster_refused.get((dtype, t), "cuOccupancyMaxActiveClusters = 0")
            raise CommError(f"rank {self.rank}: fused variant 'cluster' cannot run clusters of {cluster} x {threads} "
                            f"threads on this {self.arch}: {why}")
        return n

    def launch_pingpong(self, peer: int, role: int, rounds: int) -> None:
        """Start this rank's half of the floor probe (see allreduce_pingpong); the peer starts the other."""
        self._ensure_usable()
        base = self._probe_base
        self._probe_base += rounds
        cuda_api.context(self.device)
        A = cuda_api.Arg
        args = [
            A("u64", self._reg.peers[self.rank]),
            A("u64", self._reg.peers[peer]),
            A("u32", role),
            A("u64", base),
            A("u32", rounds),
            A("u64", self._reg.status_dev),
            A("u64", self._timeout_ns),
        ]
        cuda_api.launch(self._fn("pingpong", ""), 1, 32, self._stream(), args)

    # ---- health --------------------------------------------------------------------------------
    def status_code(self) -> int:
        return ctypes.c_uint32.from_address(self._reg.status_host).value

    def check(self) -> None:
        """Raise CommTimeout if any kernel of this rank gave up waiting (reads host memory; no sync)."""
        code = self.status_code()
        if code and self._broken is None:
            self._broken = describe_status(code, self.rank, self.config.timeout_s)
        if self._broken:
            raise CommTimeout(self._broken)

    def synchronize(self, timeout_s: float | None = None) -> None:
        """Wait (with a deadline) for this rank's stream, then check the status word."""
        import torch

        from floorline.gpu.timing import DeviceTimeout, wait_event

        ev = torch.cuda.Event()
        ev.record(torch.cuda.current_stream(self.device))
        try:
            wait_event(ev, timeout_s or self.config.timeout_s * 3 + 30, f"rank {self.rank} all-reduce")
        except DeviceTimeout as e:
            raise CommTimeout(str(e)) from None
        self.check()

    def _ensure_usable(self) -> None:
        if self._reg is None:
            raise CommError("communicator is closed")
        if self._broken:
            raise CommError(f"communicator is unusable after an earlier failure: {self._broken}")

    def close(self) -> None:
        """Free the registered memory (after the device is idle). Collective in process mode."""
        if self._reg is None:
            return
        cuda_api.ctx_synchronize(self.device)
        if self.thread_nccl is not None and self.rank == self.world - 1:  # shared; the last rank closes it last
            self.thread_nccl.close()
        for release in self._reg.release:
            release()
        self._reg = None


def _overlaps(a: Any, b: Any) -> bool:
    """Two tensors' bytes overlap (same device assumed)."""
    a0, b0 = a.data_ptr(), b.data_ptr()
    return a0 < b0 + b.numel() * b.element_size() and b0 < a0 + a.numel() * a.element_size()


def describe_status(code: int, rank: int, timeout_s: float) -> str:
    """The one-line message for a non-zero status word written by a kernel."""
    if code == 0x200:
        return f"rank {rank}: floor probe got no answer from its peer within {timeout_s:g} s"
    if code >= 0x100:
        return (f"rank {rank}: timed out after {timeout_s:g} s waiting for rank {code - 0x100}'s reduced chunk "
                "(peer stalled, missing, or calls out of step)")
    return (f"rank {rank}: timed out after {timeout_s:g} s waiting for rank {code - 1}'s data "
            "(peer stalled, missing, or calls out of step)")
