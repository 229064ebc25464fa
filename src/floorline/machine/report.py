"""Report section: every shipped design checked, one machine.check evidence packet per design.

Pure arithmetic, so it runs anywhere (no GPU) in well under a second. The packet holds the constants
with their sources as well as the checks, so a number in it can be traced without the TOML at hand.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from floorline.jsonsafe import finite
from floorline.report.registry import ReportContext, SectionResult, section


@section("machine", "Machine calculator: shipped designs", min_gpus=0, order=60)
def machine_section(ctx: ReportContext) -> SectionResult:
    from floorline.evidence.store import new_packet, write_packet
    from floorline.machine.checks import evaluate, public
    from floorline.machine.design import resolve, shipped

    res = SectionResult(headers=["design", "checks", "pass", "conditional", "fail", "tray peak", "hottest junction",
                                 "rack input", "not clean"])
    for name in shipped():
        ctx.progress(f"machine: checking {name}")
        d = resolve(name)
        rep = public(evaluate(d))
        params = finite({
            "design": name,
            "design_file": f"src/floorline/machine/designs/{name}.toml",
            "design_sha256": hashlib.sha256(Path(d.path).read_bytes()).hexdigest(),
            "summary": rep["summary"],
            "checks": rep["checks"],
            "derived": rep["derived"],
            "constants": {k: {"value": c.value, "unit": c.unit, "confidence": c.confidence, "source": c.source}
                          for k, c in d.constants.items()},
        })
        notes = [f"{c['status']} {c['id']}: {c['reason']}" for c in rep["checks"] if c["status"] != "PASS"]
        packet = new_packet("machine.check", command=["floorline", "report", "--only", "machine"],
                            params=params, notes=notes)
        res.packets.append(write_packet(packet, ctx.out_dir, f"machine-check-{name}"))
        s, dv = rep["summary"], rep["derived"]
        res.rows.append([name, len(rep["checks"]), s["pass"], s["conditional"], s["fail"],
                         f"{dv['tray_peak_power']['value']:.2f} kW", f"{dv['junction_temp']['value']:.1f} °C",
                         f"{dv['rack_input_power']['value']:.1f} kW",
                         ", ".join(c["id"] for c in rep["checks"] if c["status"] != "PASS") or "-"])
    res.notes.append("FAIL and CONDITIONAL on each design are explained in docs/machine.md; "
                     "the packets hold every constant with its source and confidence.")
    return res
