"""Replay a trace through N serving instances: routing, per-instance prefix cache, and queueing.

Pass 1 walks the trace in order: route each request, look up and admit its blocks in the chosen
instance's cache. Pass 2 runs each instance's clock: prefills one at a time in arrival order (a
prefill stalls the decode batch, as engines that prioritise prefill do), decode steps for the
running batch in between, and arrivals wait for the step in flight. Decode steps between two events
are summed in closed form (timemodel.steps_time), so the clock moves per event, not per token.
"""

from __future__ import annotations

import heapq
import math
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np

from floorline.errors import InputError
from floorline.replay.cache import PrefixCache
from floorline.replay.timemodel import TimeModel, steps_time
from floorline.replay.trace import Request

ROUTING = ("round-robin", "cache-aware")


@dataclass(frozen=True)
class ReplayConfig:
    instances: int = 1
    routing: str = "cache-aware"
    cache_blocks: int | None = None  # per instance; None = unbounded
    block_size: int = 512
    max_batch: int = 256
    gpus_per_instance: int = 1
    usd_per_gpu_hour: float = 2.5
    power_w: float = 700.0
    pue: float = 1.2
    success_rate: float = 1.0  # used when the trace has no success column
    balance_s: float = 5.0  # cache-aware: leave the best-hit instance if its prefill backlog is this much longer
    kv_budget_tokens: int | None = None  # running sequences' KV (prompt + output) per instance; None = no limit

    def check(self) -> None:
        if self.instances < 1:
            raise InputError(f"--instances: must be >= 1, got {self.instances}")
        if self.routing not in ROUTING:
            raise InputError(f"--routing: must be one of {', '.join(ROUTING)}, got {self.routing!r}")
        if self.cache_blocks is not None and self.cache_blocks < 1:
            raise InputError(f"--cache-blocks: must be >= 0 (0 = unbounded), got {self.cache_blocks}")
        if self.block_size < 1:
            raise InputError(f"--block-size: must be > 0, got {self.block_size}")
        if self.max_batch < 1:
            raise InputError(f"--max-batch: must be >= 1, got {self.max_batch}")
        if self.gpus_per_instance < 1:
            raise InputError(f"--gpus-per-instance: must be >= 1, got {self.gpus_per_instance}")
        for name, v in (("--usd-per-gpu-hour", self.usd_per_gpu_hour), ("--power-w", self.power_w),
                        ("--pue", self.pue)):
            if not (math.isfinite(v) and v > 0):
                raise InputError(f"{name}: must be > 0, got {v}")
        if not (0 < self.success_rate <= 1):
            raise InputError(f"--success-rate: must be > 0 and <= 1, got {self.success_rate}")
        if self.kv_budget_tokens is not None and self.kv_budget_tokens < 1:
            raise InputError(f"kv budget: must be >= 1 token, got {self.kv_budget_tokens}")
        if not (self.balance_s >= 0):
            raise InputError(f"--balance-s: must be >= 0, got {self.balance_s}")


@dataclass
class _Placed:
    instance: int
    hit_blocks: int
    reused: int
    computed: int


def place(reqs: list[Request], cfg: ReplayConfig, tm: TimeModel, tick: Callable[[], None]) -> tuple[list[_Placed], list[PrefixCache]]:
    """Pass 1: routing and the caches, in trace order."""
    caches = [PrefixCache(cfg.cache_blocks) for _ in range(cfg.instances)]
    backlog_end = [0.0] * cfg.instances  # when each instance's queued prefills would finish
    out = []
    bs = cfg.block_size
    for i, r in enumerate(reqs):
        if cfg.routing == "round-robin" or cfg.instances == 1:
            k = i % cfg.instances
        else:
            hits = [c.lookup(r.blocks) for c in caches]
            least = min(range(cfg.instances), key=lambda j: (backlog_end[j], j))
            best = max(range(cfg.instances), key=lambda j: (hits[j], -backlog_end[j], -j))
            too_busy = backlog_end[best] - max(backlog_end[least], r.arrival_s) > cfg.balance_s
            k = least if hits[best] == 0 or too_busy else best
        res = caches[k].admit(r.blocks)
        reused = min(res.hit_blocks * bs, r.input_tokens)
        computed = r.input_tokens - reused
        backlog_end[k] = max(backlog_end[k], r.arrival_s) + tm.prefill_s(computed, reused)
        out.append(_Placed(k, res.hit_blocks, reused, computed))
        tick()
    return out, caches


def run_instance(idx: list[int], reqs: list[Request], placed: list[_Placed], tm: TimeModel, max_batch: int,
                 first_token: np.ndarray, finish: np.ndarray, tick: Callable[[int], None],
                 kv_budget: int | None = None) -> float:
    """Pass 2 for one instance; fills first_token/finish (seconds) and returns its busy seconds.

    A request joins the batch only if its whole KV (prompt + output tokens) fits next to the running
    ones in kv_budget tokens (reserved up front, so nothing is ever preempted); one request alone
    always runs, however long, so the clock cannot deadlock."""
    t = 0.0
    busy = 0.0
    g = 0  # decode steps run so far on this instance
    waiting: deque[int] = deque()
    running: list[tuple[int, int]] = []  # heap of (finish step, request)
    ctx_base = 0  # sum over running of (context at join - join step); context total = ctx_base + B g
    ctx_of: dict[int, int] = {}
    reserved = 0  # KV tokens promised to running sequences

    def fits(j: int) -> bool:
        if len(running) >= max_batch:
            return False
        return kv_budget is None or not running or reserved + reqs[j].input_tokens + reqs[j].output_tokens <= kv_budget

    p = 0
    n = len(idx)
    while True:
        while p < n and reqs[idx[p]].arrival_s <= t:
            waiting.append(idx[p])
            p += 1
        if waiting and fits(waiting[0]):
            j = waiting.popleft()
            pl = placed[j]
            dt = tm.prefill_s(pl.computed, pl.reused)
            t += dt
            busy += dt
            first_token[j] = t
            tick(1)
            r = reqs[j]
            if r.output_tokens > 1:
                c0 = r.input_tokens + 1 - g
                ctx_of[j] = c0
                ctx_base += c0
                heapq.heappush(running, (g + r.output_tokens - 1, j))
                reserved += r.input_tokens + r.output_tokens
            else:
                finish[j] = t
            continue
        if running:
            b = len(running)
            k = running[0][0] - g  # steps to the next completion
            s0 = ctx_base + b * g
            if p < n and not waiting and fits(idx[p]):  # an arrival that could start now cuts the run short
                ta = reqs[idx[p]].arrival_s
                if t + steps_time(tm, b, s0, k) > ta:
                    lo, hi = 1, k  # fewest steps that reach the arrival
                    while lo < hi:
                        mid = (lo + hi) // 2
                        if t + steps_time(tm, b, s0, mid) >= ta:
                            hi = mid
                        else:
                            lo = mid + 1
                    k = lo
            dt = steps_time(tm, b, s0, k)
            t += dt
            busy += dt
            g += k
            while running and running[0][0] == g:
                _, j = heapq.heappop(running)
                finish[j] = t
                ctx_base -= ctx_of.pop(j)
                reserved -= reqs[j].input_tokens + reqs[j].output_tokens
            continue
        if p < n:
            t = max(t, reqs[idx[p]].arrival_s)
            continue
        break
    return busy


def _pct(values: np.ndarray) -> dict[str, float | None]:
    if values.size == 0:
        return {"p50": None, "p95": None, "p99": None}
    p50, p95, p99 = np.percentile(values, [50, 95, 99])
    return {"p50": float(p50), "p95": float(p95), "p99": float(p99)}


def replay(reqs: list[Request], cfg: ReplayConfig, tm: TimeModel, progress=None) -> dict:
    cfg.check()
    n = len(reqs)
    task = progress.add_task("prefix cache + routing", total=n) if progress else None
    placed, caches = place(reqs, cfg, tm, (lambda: progress.advance(task)) if progress else (lambda: None))
    first = np.full(n, np.nan)
    fin = np.full(n, np.nan)
    task2 = progress.add_task("serving clock", total=n) if progress else None
    per_inst: list[list[int]] = [[] for _ in range(cfg.instances)]
    for i, pl in enumerate(placed):
        per_inst[pl.instance].append(i)
    busy = [run_instance(ix, reqs, placed, tm, cfg.max_batch, first, fin,
                         (lambda m: progress.advance(task2, m)) if progress else (lambda m: None), cfg.kv_budget_tokens)
            for ix in per_inst]

    arrival = np.array([r.arrival_s for r in reqs])
    inp = np.array([r.input_tokens for r in reqs], dtype=np.int64)
    out = np.array([r.output_tokens for r in reqs], dtype=np.int64)
    blocks = sum(len(r.blocks) for r in reqs)
    hit_blocks = sum(p.hit_blocks for p in placed)
    reused = sum(p.reused for p in placed)
    computed = sum(p.computed for p in placed)
    ttft = (first - arrival) * 1e3
    multi = out > 1
    tpot = (fin[multi] - first[multi]) / (out[multi] - 1) * 1e3
    gpus = cfg.instances * cfg.gpus_per_instance
    gpu_seconds = sum(busy) * cfg.gpus_per_instance
    span = float(np.nanmax(fin) - arrival.min())
    provisioned = gpus * span
    cost = gpu_seconds / 3600 * cfg.usd_per_gpu_hour
    energy = gpu_seconds * cfg.power_w * cfg.pue
    flags = [r.success for r in reqs]
    if all(f is not None for f in flags):
        successes, basis = float(sum(flags)), "success column"
    elif any(f is not None for f in flags):
        raise InputError("success: the trace gives success on some lines and not others; give it on all or none")
    else:
        successes, basis = n * cfg.success_rate, f"success rate {cfg.success_rate:g}"
    kvt = tm.kv_bytes_per_token
    evicted = sum(c.evicted_total for c in caches)
    return {
        "config": asdict(cfg),
        "requests": n,
        "instances": cfg.instances,
        "routing": cfg.routing,
        "cache_blocks": cfg.cache_blocks or 0,
        "block_size": cfg.block_size,
        "hit_ratio_blocks": hit_blocks / blocks,
        "hit_ratio_tokens": reused / int(inp.sum()),
        "prefill_tokens_computed": int(computed),
        "prefill_tokens_reused": int(reused),
        "output_tokens": int(out.sum()),
        "kv_bytes_per_token": kvt,
        "kv_bytes_created": computed * kvt,
        "kv_bytes_reused": reused * kvt,
        "kv_bytes_evicted": evicted * cfg.block_size * kvt,
        "blocks_evicted": evicted,
        "ttft_ms": _pct(ttft),
        "tpot_ms": _pct(tpot),
        "gpu_seconds": gpu_seconds,
        "gpu_seconds_provisioned": provisioned,
        "utilization": gpu_seconds / provisioned if provisioned > 0 else None,
        "makespan_s": span,
        "cost_usd": cost,
        "cost_per_request_usd": cost / n,
        "successful_tasks": successes,
        "success_basis": basis,
        "cost_per_successful_task_usd": cost / successes if successes else None,
        "energy_j": energy,
        "energy_per_request_j": energy / n,
        "energy_per_successful_task_j": energy / successes if successes else None,
        "usd_per_m_output_tokens": float(cost / out.sum() * 1e6),
    }
