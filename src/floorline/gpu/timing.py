"""The timing harness every benchmark uses.

CUDA events on the timed stream, warm-up, median and spread over many runs, CUDA-graph replay for
microsecond ops, an optional L2 flush, rotating input sets (fn receives the iteration index), and a
deadline on every host-side wait so a hung kernel becomes an error instead of a silent hang.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from floorline.evidence.schema import Timing


class DeviceTimeout(RuntimeError):
    pass


@dataclass(frozen=True)
class TimingConfig:
    warmup: int = 10
    iters: int = 50
    flush_l2: bool = False
    graph: bool = False
    ops_per_graph: int = 20  # ops captured per graph; per-op time = replay time / this
    timeout_s: float = 60.0
    keep_samples: bool = False


@dataclass(frozen=True)
class TimingResult:
    samples_us: list[float]
    method: str
    warmup: int
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def median(self) -> float:
        return statistics.median(self.samples_us)

    def quantile(self, q: float) -> float:
        s = sorted(self.samples_us)
        if len(s) == 1:
            return s[0]
        pos = q * (len(s) - 1)
        lo = int(pos)
        hi = min(lo + 1, len(s) - 1)
        return s[lo] + (s[hi] - s[lo]) * (pos - lo)

    def to_model(self, keep_samples: bool = False) -> Timing:
        s = self.samples_us
        return Timing(
            method=self.method,
            warmup=self.warmup,
            iterations=len(s),
            median=self.median,
            min=min(s),
            p10=self.quantile(0.10),
            p90=self.quantile(0.90),
            max=max(s),
            unit="us",
            samples=list(s) if keep_samples else None,
        )


def wait_event(event: Any, timeout_s: float, what: str = "GPU work") -> None:
    """Poll instead of synchronize(): a kernel that never finishes raises instead of hanging."""
    deadline = time.monotonic() + timeout_s
    delay = 1e-5
    while not event.query():
        if time.monotonic() > deadline:
            raise DeviceTimeout(f"{what} did not finish within {timeout_s:.0f} s")
        time.sleep(delay)
        delay = min(delay * 2, 1e-3)


def sync(timeout_s: float = 60.0, what: str = "GPU work", device: Any = None) -> None:
    import torch

    ev = torch.cuda.Event()
    ev.record(torch.cuda.current_stream(device))
    wait_event(ev, timeout_s, what)


class L2Flusher:
    """Writes a buffer twice the L2 size so the next op starts with a cold cache."""

    def __init__(self) -> None:
        import torch

        l2 = getattr(torch.cuda.get_device_properties(torch.cuda.current_device()), "L2_cache_size", 64 << 20)
        self.buf = torch.empty(max(2 * l2, 1 << 20), dtype=torch.uint8, device="cuda")

    def __call__(self) -> None:
        self.buf.fill_(1)


def time_cuda(fn: Callable[[int], Any], cfg: TimingConfig = TimingConfig()) -> TimingResult:
    """Per-call device time in microseconds. fn(i) runs one op on input set i."""
    if cfg.graph:
        return _time_graph(fn, cfg)
    import torch

    flush = L2Flusher() if cfg.flush_l2 else None
    for i in range(cfg.warmup):
        fn(i)
    sync(cfg.timeout_s, "warm-up")
    starts = [torch.cuda.Event(enable_timing=True) for _ in range(cfg.iters)]
    ends = [torch.cuda.Event(enable_timing=True) for _ in range(cfg.iters)]
    for i in range(cfg.iters):
        if flush:
            flush()
        starts[i].record()
        fn(i)
        ends[i].record()
    wait_event(ends[-1], cfg.timeout_s, "timed runs")
    samples = [s.elapsed_time(e) * 1e3 for s, e in zip(starts, ends, strict=True)]
    return TimingResult(samples, "cuda_events" + ("+l2_flush" if flush else ""), cfg.warmup)


def _time_graph(fn: Callable[[int], Any], cfg: TimingConfig) -> TimingResult:
    import torch

    n = cfg.ops_per_graph
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):  # warm up outside capture: lazy init must not be captured
        for i in range(max(cfg.warmup, 2)):
            fn(i)
    torch.cuda.current_stream().wait_stream(side)
    sync(cfg.timeout_s, "graph warm-up")
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        for i in range(n):
            fn(i)
    for _ in range(3):
        graph.replay()
    sync(cfg.timeout_s, "graph warm-up replays")
    starts = [torch.cuda.Event(enable_timing=True) for _ in range(cfg.iters)]
    ends = [torch.cuda.Event(enable_timing=True) for _ in range(cfg.iters)]
    for i in range(cfg.iters):
        starts[i].record()
        graph.replay()
        ends[i].record()
    wait_event(ends[-1], cfg.timeout_s, "graph replays")
    samples = [s.elapsed_time(e) * 1e3 / n for s, e in zip(starts, ends, strict=True)]
    return TimingResult(samples, f"cuda_graph_replay({n} ops/graph)", cfg.warmup, {"ops_per_graph": n})


def time_wall(fn: Callable[[int], Any], warmup: int = 3, iters: int = 20) -> TimingResult:
    """CPU wall-clock timing (marked as such), for machines without a GPU."""
    for i in range(warmup):
        fn(i)
    samples = []
    for i in range(iters):
        t0 = time.perf_counter()
        fn(i)
        samples.append((time.perf_counter() - t0) * 1e6)
    return TimingResult(samples, "wall_clock_cpu", warmup)
