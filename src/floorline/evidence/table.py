"""The measured-results table, built from committed packets (the README's table comes from here)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from floorline.evidence.schema import EvidencePacket
from floorline.evidence.store import iter_packets

# Params worth showing per kind; others are left to `evidence show`.
_KEY_PARAMS = {
    "bench.hbm": ("op", "bytes"),
    "bench.attention": ("context", "batch", "kv_dtype", "page_size", "graph"),
    "bench.allreduce": ("size_bytes", "world", "mode", "graph", "algorithm"),
    "bench.decode": ("model", "layers", "batch", "context", "weight_dtype", "kv_dtype", "tp"),
    "decode.check": ("model", "steps", "layers", "experts", "kv_dtype"),
}


@dataclass(frozen=True)
class Row:
    device: str
    kind: str
    params: str
    status: str
    time: str
    floor: str
    baselines: str
    file: str


def _fmt(x: float | None, digits: int = 3) -> str:
    if x is None:
        return "-"
    return f"{x:.{digits}g}" if abs(x) < 1e4 else f"{x:,.0f}"


def row_of(path: Path, root: Path, p: EvidencePacket) -> Row:
    keys = _KEY_PARAMS.get(p.kind)
    items = [(k, p.params[k]) for k in keys if k in p.params] if keys else list(p.params.items())[:4]
    params = " ".join(f"{k}={v}" for k, v in items)
    t = f"{_fmt(p.timing.median)} {p.timing.unit}" if p.timing else "-"
    floor = f"{p.floor.fraction:.0%}" if p.floor and p.floor.fraction is not None else "-"
    bl = ", ".join(f"{b.name} {b.ratio:.2f}x" for b in p.baselines if b.ratio is not None) or "-"
    rel = path.relative_to(root) if path.is_relative_to(root) else path
    device = rel.parts[0] if len(rel.parts) > 1 else "-"
    return Row(device, p.kind, params, p.status, t, floor, bl, str(rel))


def build_rows(directory: Path, exclude_devices: frozenset[str] = frozenset()) -> list[Row]:
    directory = Path(directory)
    rows = [row_of(path, directory, p) for path, p in iter_packets(directory)]
    rows = [r for r in rows if r.device not in exclude_devices]
    return sorted(rows, key=lambda r: (r.device, r.kind, r.file))


HEADERS = ("device", "kind", "params", "status", "median", "of floor", "vs peers (peer/ours)")


def markdown(rows: list[Row]) -> str:
    lines = ["| " + " | ".join(HEADERS) + " |", "|" + "---|" * len(HEADERS)]
    for r in rows:
        lines.append(f"| {r.device} | {r.kind} | {r.params} | {r.status} | {r.time} | {r.floor} | {r.baselines} |")
    return "\n".join(lines)
