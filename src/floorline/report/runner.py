"""Run every registered section this machine can run; write packets, report.html and a summary."""

from __future__ import annotations

import traceback
from dataclasses import dataclass, field
from pathlib import Path

from floorline.evidence.store import DEFAULT_COMMAND
from floorline.report.registry import ReportContext, SectionResult, all_sections


@dataclass
class SectionOutcome:
    name: str
    title: str
    status: str  # passed | failed | error | skipped
    reason: str | None = None
    result: SectionResult = field(default_factory=SectionResult)


def gpu_count() -> int:
    from floorline.gpu.probe import cuda_available

    if not cuda_available():
        return 0
    import torch

    return torch.cuda.device_count()


def run_report(
    results_root: Path, only: list[str] | None = None, quick: bool = False, progress=lambda m: None
) -> tuple[Path, list[SectionOutcome]]:
    from floorline.gpu.probe import device_slug

    sections = all_sections()
    if only:
        known = {s.name for s in sections}
        unknown = [n for n in only if n not in known]
        if unknown:
            from floorline.errors import InputError

            raise InputError(f"--only: unknown section {unknown[0]!r}; allowed: {', '.join(sorted(known))}")
        sections = [s for s in sections if s.name in only]
    n_gpu = gpu_count()
    out_dir = results_root / device_slug()
    ctx = ReportContext(out_dir=out_dir, gpu_count=n_gpu, quick=quick, progress=progress)
    outcomes = []
    for s in sections:
        reason = s.skip_reason(n_gpu)
        if reason:
            outcomes.append(SectionOutcome(s.name, s.title, "skipped", reason))
            continue
        progress(f"section {s.name}")
        token = DEFAULT_COMMAND.set(["floorline", "report", "--only", s.name])
        try:
            res = s.run(ctx)
            outcomes.append(SectionOutcome(s.name, s.title, res.status, None, res))
        except Exception as e:  # noqa: BLE001 - one broken section must not hide the others
            tb = traceback.format_exc(limit=3)
            outcomes.append(SectionOutcome(s.name, s.title, "error", f"{type(e).__name__}: {e}",
                                           SectionResult(notes=[tb], status="error")))
        finally:
            DEFAULT_COMMAND.reset(token)
    return out_dir, outcomes
