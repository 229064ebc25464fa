"""Report section: the device probe, written as a device.probe packet."""

from __future__ import annotations

from floorline.report.registry import ReportContext, SectionResult, section


@section("device", "Device probe", min_gpus=1, order=0)
def device_section(ctx: ReportContext) -> SectionResult:
    from floorline.evidence.store import new_packet, write_packet
    from floorline.gpu.probe import probe

    info = probe()
    packet = new_packet("device.probe", params={"probe": info})
    path = write_packet(packet, ctx.out_dir, "device-probe")
    rows = [
        [g["index"], g["name"], g["compute_capability"], g["sm_count"], f"{g['memory_bytes'] / 2**30:.1f} GiB",
         f"{(g['l2_bytes'] or 0) / 2**20:.0f} MiB", g["max_sm_clock_mhz"], g["max_mem_clock_mhz"], g["driver"]]
        for g in info["gpus"]
    ]
    return SectionResult(
        packets=[path],
        headers=["gpu", "name", "cc", "SMs", "memory", "L2", "max SM MHz", "max mem MHz", "driver"],
        rows=rows,
        notes=[info["topology"]] if info.get("topology") else [],
    )
