"""Targets from the issues, checked against committed packets: the README shows measured next to target.

docs/targets.toml lists each target as a packet selector (kind + params) and a metric:
  timing.median | floor.fraction | baseline:<name> (ratio = peer time / ours) | correctness.value
"""

from __future__ import annotations

import operator
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from floorline.errors import InputError
from floorline.evidence.schema import EvidencePacket
from floorline.evidence.store import iter_packets

_OPS = {">=": operator.ge, "<=": operator.le, ">": operator.gt, "<": operator.lt}


@dataclass(frozen=True)
class Target:
    issue: int
    title: str
    kind: str
    match: dict[str, Any]
    metric: str
    op: str
    value: float
    device: str | None = None


@dataclass(frozen=True)
class TargetResult:
    target: Target
    measured: float | None
    met: bool | None
    file: str | None


def load_targets(path: Path) -> list[Target]:
    try:
        data = tomllib.loads(Path(path).read_text())
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except tomllib.TOMLDecodeError as e:
        raise InputError(f"{path}: malformed TOML: {e}") from None
    out = []
    for i, t in enumerate(data.get("target", [])):
        if t.get("op") not in _OPS:
            raise InputError(f"{path}: target {i} op must be one of {', '.join(_OPS)}")
        out.append(Target(int(t["issue"]), t["title"], t["kind"], dict(t.get("match", {})), t["metric"],
                          t["op"], float(t["value"]), t.get("device")))
    return out


def metric_of(p: EvidencePacket, metric: str) -> float | None:
    if metric == "timing.median":
        return p.timing.median if p.timing else None
    if metric == "floor.fraction":
        return p.floor.fraction if p.floor else None
    if metric == "correctness.value":
        return p.correctness.value if p.correctness else None
    if metric.startswith("baseline:"):
        b = p.baseline(metric.split(":", 1)[1])
        return b.ratio if b else None
    if metric.startswith("params."):
        v: Any = p.params
        for part in metric.split(".")[1:]:
            v = v.get(part) if isinstance(v, dict) else None
        return float(v) if isinstance(v, int | float) else None
    raise InputError(f"unknown target metric {metric!r}")


def _matches(p: EvidencePacket, t: Target) -> bool:
    return p.kind == t.kind and all(p.params.get(k) == v for k, v in t.match.items())


def evaluate(targets: list[Target], results: Path) -> list[TargetResult]:
    # a failed packet is still a measurement (a correctness check that missed its tolerance must show
    # as a miss, not vanish); errored or skipped runs measured nothing
    packets = [(path, p) for path, p in iter_packets(results) if p.status in ("passed", "failed")]
    out = []
    for t in targets:
        best: tuple[float, str, tuple[str, str]] | None = None
        for path, p in packets:
            rel = path.relative_to(results)
            if t.device and rel.parts[0] != t.device:
                continue
            if not _matches(p, t):
                continue
            v = metric_of(p, t.metric)
            if v is None:
                continue
            # the most recent packet for a selector is the one that counts, not the best-looking one
            key = (p.created_at, str(rel))
            if best is None or key > best[2]:
                best = (v, str(rel), key)
        if best is None:
            out.append(TargetResult(t, None, None, None))
        else:
            out.append(TargetResult(t, best[0], _OPS[t.op](best[0], t.value), best[1]))
    return out


def markdown(results: list[TargetResult]) -> str:
    lines = ["| issue | target | measured | met | packet |", "|---|---|---|---|---|"]
    for r in results:
        m = "-" if r.measured is None else f"{r.measured:.4g}"
        met = "not run" if r.met is None else ("yes" if r.met else "**no**")
        lines.append(f"| #{r.target.issue} | {r.target.title} | {m} | {met} | {r.file or '-'} |")
    return "\n".join(lines)
