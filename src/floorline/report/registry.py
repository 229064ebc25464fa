"""Sections register themselves with @section; report/sections.py lists the modules that hold them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class ReportContext:
    """What a section gets: where to write, what this machine has, and values shared between sections
    in one process (e.g. the HBM ceiling that later benchmarks divide by)."""

    out_dir: Path
    gpu_count: int
    quick: bool = False
    shared: dict[str, Any] = field(default_factory=dict)
    progress: Callable[[str], None] = lambda msg: None


@dataclass
class SectionResult:
    packets: list[Path] = field(default_factory=list)
    headers: list[str] = field(default_factory=list)
    rows: list[list[Any]] = field(default_factory=list)
    plots: list[tuple[str, str]] = field(default_factory=list)  # (title, inline SVG)
    notes: list[str] = field(default_factory=list)
    status: str = "passed"


@dataclass(frozen=True)
class Section:
    name: str
    title: str
    run: Callable[[ReportContext], SectionResult]
    min_gpus: int = 0
    order: int = 100

    def skip_reason(self, gpu_count: int) -> str | None:
        if self.min_gpus > gpu_count:
            have = "no CUDA GPU" if gpu_count == 0 else f"{gpu_count} GPU(s)"
            return f"needs {self.min_gpus} GPU(s), this machine has {have}"
        return None


_SECTIONS: dict[str, Section] = {}


def section(name: str, title: str, *, min_gpus: int = 0, order: int = 100):
    def deco(fn: Callable[[ReportContext], SectionResult]):
        if name in _SECTIONS and _SECTIONS[name].run is not fn:
            raise ValueError(f"report section {name!r} registered twice")
        _SECTIONS[name] = Section(name, title, fn, min_gpus, order)
        return fn

    return deco


def all_sections() -> list[Section]:
    from floorline.report.sections import load_all

    load_all()
    return sorted(_SECTIONS.values(), key=lambda s: (s.order, s.name))
