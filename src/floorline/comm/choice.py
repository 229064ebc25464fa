"""Automatic algorithm choice by message size and world size.

The thresholds live in crossover.toml (bytes, with their source). The rule: one-shot while the message
is small (one round trip, latency-bound), two-shot up to the point where NCCL's bandwidth kernels win,
then NCCL itself when a NCCL group is at hand. `floorline bench allreduce` measures all three in one
run and reports where the table is wrong.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import cache
from pathlib import Path

_TABLE = Path(__file__).with_name("crossover.toml")
CHOICES = ("oneshot", "twoshot", "nccl")


@dataclass(frozen=True)
class Crossover:
    oneshot_max_bytes: int
    twoshot_max_bytes: int
    source: str = ""


@cache
def crossover(world: int, path: Path = _TABLE, mode: str = "") -> Crossover:
    """The table's entry for `world`; a [world.N.<mode>] sub-table (written by `floorline bench allreduce
    --tune-crossover` when thread mode measured differently) overrides it for that mode."""
    data = tomllib.loads(Path(path).read_text())
    entry = data.get("world", {}).get(str(world)) or data["default"]
    sub = entry.get(mode) if mode else None
    if isinstance(sub, dict):
        entry = sub
    return Crossover(int(entry["oneshot_max_bytes"]), int(entry["twoshot_max_bytes"]), str(entry.get("source", "")))


def choose(nbytes: int, world: int, have_nccl: bool, table: Crossover | None = None) -> str:
    """'oneshot', 'twoshot' or 'nccl' for a message of `nbytes` on `world` ranks."""
    if nbytes < 0:
        raise ValueError(f"nbytes: must be >= 0, got {nbytes}")
    t = table or crossover(world)
    if nbytes <= t.oneshot_max_bytes:
        return "oneshot"
    if nbytes <= t.twoshot_max_bytes or not have_nccl:
        return "twoshot"
    return "nccl"
