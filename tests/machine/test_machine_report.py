"""The machine report section writes one verifying machine.check packet per shipped design."""

from floorline.evidence.store import load_packet, verify_packet
from floorline.machine.design import shipped
from floorline.machine.report import machine_section
from floorline.report.registry import ReportContext


def test_section_writes_a_packet_per_design(tmp_path):
    res = machine_section(ReportContext(out_dir=tmp_path, gpu_count=0, quick=True))
    assert len(res.packets) == len(shipped()) == len(res.rows)
    for path in res.packets:
        verify_packet(path)
        p = load_packet(path)
        assert p.kind == "machine.check" and p.status == "passed"
        assert len(p.params["checks"]) == 27
        assert p.params["constants"]["gpu.power"]["source"]
    mx = load_packet(tmp_path / "machine-check-mx8-355.json")
    assert mx.params["summary"] == {"pass": 24, "conditional": 3, "fail": 0}
    assert mx.command == ["floorline", "report", "--only", "machine"]  # the command that writes it again


def test_section_is_registered():
    from floorline.report.registry import all_sections

    assert "machine" in {s.name for s in all_sections()}
