"""The kernelenv report section runs in seconds on CPU in quick mode and catches the hack it carries."""

from __future__ import annotations

from floorline.evidence.store import verify_packet
from floorline.report.registry import ReportContext, all_sections


def test_kernelenv_section_quick_cpu(tmp_path):
    sec = next(s for s in all_sections() if s.name == "kernelenv")
    res = sec.run(ReportContext(out_dir=tmp_path, gpu_count=0, quick=True))
    assert res.status == "passed", res.notes
    assert [r[2] for r in res.rows] == ["passed", "passed", "failed"]
    assert res.rows[-1][3] == "result_cache" and res.rows[-1][-1] == "-1.00"
    for p in res.packets:
        assert verify_packet(p).kind == "kernelenv.attempt"
