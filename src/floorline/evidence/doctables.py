"""Markdown blocks for the docs, rendered from committed packets (scripts/docs_tables.py fills them).

A block is everything between `<!-- NAME:start -->` and `<!-- NAME:end -->` in a doc. Every row names
its packet and the run it came from (the packet's created_at date and git commit), so numbers of
different runs (different same-run ceilings) never sit in one table without saying so.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from floorline.errors import InputError
from floorline.evidence.schema import EvidencePacket
from floorline.evidence.store import iter_packets
from floorline.evidence.targets import Target, TargetResult, evaluate


@dataclass(frozen=True)
class Case:
    """One table row: a packet, and `item` when one packet gives several rows (e.g. one per format)."""

    file: str  # relative to the results directory: "<device>/<name>.json"
    packet: EvidencePacket
    item: Any = None

    @property
    def params(self) -> dict:
        return self.packet.params

    @property
    def name(self) -> str:
        return Path(self.file).name


Column = tuple[str, Callable[[Case], str]]


def load_cases(results: Path, kind: str, device: str | None = None,
               where: Callable[[EvidencePacket], bool] | None = None) -> list[Case]:
    """Packets of one kind (optionally one device directory, optionally filtered), sorted by file."""
    out = []
    for path, p in iter_packets(results):
        rel = path.relative_to(results)
        if p.kind != kind or (device and rel.parts[0] != device) or (where and not where(p)):
            continue
        out.append(Case(str(rel), p))
    return out


def run_of(p: EvidencePacket) -> str:
    """'2026-12-04, 8fcd8ec' (+ ' dirty' when the tree had uncommitted changes)."""
    commit = (p.git.commit or "no commit")[:7]
    return f"{p.created_at[:10]}, {commit}{' dirty' if p.git.dirty else ''}"


def num(x: float | None, digits: int = 1, suffix: str = "") -> str:
    return "-" if x is None else f"{x:.{digits}f}{suffix}"


def pct(x: float | None, digits: int = 1) -> str:
    return "-" if x is None else f"{x:.{digits}%}"


def peer(name: str, digits: int = 1) -> Callable[[Case], str]:
    """A column: peer time / ours, with the peer's time ('skipped' with no timing)."""
    def cell(c: Case) -> str:
        b = c.packet.baseline(name)
        if b is None:
            return "-"
        if b.status != "passed" or b.ratio is None:
            return b.status
        t = f" ({b.timing.median:.{digits}f} {b.timing.unit})" if b.timing else ""
        return f"{b.ratio:.2f}x{t}"
    return cell


def table(cases: Sequence[Case], columns: Sequence[Column]) -> str:
    """One row per case, then the run and packet columns. When every row comes from one run, the run
    is said once above the table instead of in a column."""
    runs = {run_of(c.packet) for c in cases}
    devices = sorted({Path(c.file).parts[0] for c in cases})
    one_run = len(runs) == 1
    heads = [h for h, _ in columns] + ([] if one_run else ["run (date, commit)"]) + ["packet"]
    lines = []
    where = ", ".join(f"`results/{d}/`" for d in devices) or "-"
    if one_run:
        lines.append(f"Packets in {where}, all from one run ({next(iter(runs))}).\n")
    else:
        lines.append(f"Packets in {where}; the run column is each packet's created_at date and git commit.\n")
    lines += ["| " + " | ".join(heads) + " |", "|" + "---|" * len(heads)]
    for c in cases:
        cells = [f(c) for _, f in columns] + ([] if one_run else [run_of(c.packet)]) + [c.name]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def format_measured(metric: str, v: float | None) -> str:
    if v is None:
        return "-"
    if metric == "floor.fraction":
        return f"{v:.1%}"
    if metric.startswith("baseline:") or "over" in metric.rsplit(".", 1)[-1]:
        return f"{v:.2f}x"
    return f"{v:.4g}"


def targets_table(targets: Sequence[Target], results: Path) -> str:
    """The issues' targets (docs/targets.toml) against the latest matching packet, with its run."""
    evaluated: list[TargetResult] = evaluate(list(targets), results)
    packets = {str(path.relative_to(results)): p for path, p in iter_packets(results)}
    lines = ["| issue | target | measured | met | run (date, commit) | packet |", "|---|---|---|---|---|---|"]
    for r in evaluated:
        met = "not run" if r.met is None else ("yes" if r.met else "**no**")
        run = run_of(packets[r.file]) if r.file else "-"
        lines.append(f"| #{r.target.issue} | {r.target.title} | {format_measured(r.target.metric, r.measured)} | "
                     f"{met} | {run} | {r.file or '-'} |")
    return "\n".join(lines)


def replace_block(text: str, name: str, body: str) -> str:
    """Put `body` between the NAME markers; a doc without them is an error, not a silent no-op."""
    pattern = re.compile(rf"(<!-- {re.escape(name)}:start -->\n).*?(<!-- {re.escape(name)}:end -->)", re.S)
    if not pattern.search(text):
        raise InputError(f"no <!-- {name}:start --> ... <!-- {name}:end --> block")
    return pattern.sub(lambda m: m.group(1) + body.rstrip("\n") + "\n" + m.group(2), text, count=1)
