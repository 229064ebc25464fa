"""Report section: the table of every committed evidence packet under results/."""

from __future__ import annotations

from floorline.report.registry import ReportContext, SectionResult, section


@section("evidence", "Evidence table (committed packets)", order=1000)
def evidence_section(ctx: ReportContext) -> SectionResult:
    from floorline.errors import EvidenceMismatch
    from floorline.evidence.store import verify_packet
    from floorline.evidence.table import HEADERS, build_rows

    root = ctx.out_dir.parent
    if not root.exists():
        return SectionResult(notes=[f"{root} does not exist yet"])
    rows = build_rows(root)
    bad = []
    for r in rows:
        try:
            verify_packet(root / r.file)
        except EvidenceMismatch as e:
            bad.append(str(e))
    res = SectionResult(
        headers=list(HEADERS) + ["file"],
        rows=[[r.device, r.kind, r.params, r.status, r.time, r.floor, r.baselines, r.file] for r in rows],
        notes=bad,
    )
    res.status = "failed" if bad else "passed"
    return res
