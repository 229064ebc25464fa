"""Every constant the machine model reads: its dimension and the range physics allows.

A design TOML must give exactly these keys (so a typo is an error, not a silently ignored value);
`--set` and the web API validate against the same table, so the CLI and the server refuse the same
inputs with the same one-line message.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Spec:
    unit: str  # canonical unit; a design may use any unit of the same dimension
    lo: float
    hi: float
    lo_open: bool = False  # True: value must be > lo (zero is unphysical), else >= lo
    integer: bool = False
    label: str = ""

    def allowed(self) -> str:
        lo = f"> {_fmt(self.lo)}" if self.lo_open else f">= {_fmt(self.lo)}"
        kind = "an integer " if self.integer else "a number "
        unit = "" if self.unit == "1" else f" {self.unit}"
        return f"{kind}{lo} and <= {_fmt(self.hi)}{unit}"

    def ok(self, x: float) -> bool:
        if not math.isfinite(x) or x > self.hi:
            return False
        if (x <= self.lo) if self.lo_open else (x < self.lo):
            return False
        return not self.integer or float(x).is_integer()


def _fmt(x: float) -> str:
    return f"{x:g}"


def _s(unit, lo, hi, label, lo_open=False, integer=False):
    return Spec(unit, float(lo), float(hi), lo_open, integer, label)


def _pos(unit, hi, label):  # strictly positive: a zero here divides by zero or means "no such part"
    return _s(unit, 0, hi, label, lo_open=True)


def _nonneg(unit, hi, label):
    return _s(unit, 0, hi, label)


def _count(lo, hi, label):
    return _s("1", lo, hi, label, integer=True)


def _frac(label, lo_open=True):
    return _s("1", 0, 1, label, lo_open=lo_open)


KEYS: dict[str, Spec] = {
    # accelerator
    "gpu.count": _count(1, 72, "GPUs per tray"),
    "gpu.power": _pos("W", 5000, "GPU power (TBP the design runs at)"),
    "gpu.power_max": _pos("W", 5000, "GPU rated max board power"),
    "gpu.peak_factor": _s("1", 1, 3, "GPU transient peak / TBP"),
    "gpu.loop_fraction": _frac("GPU heat into the cooling loop", lo_open=False),
    "gpu.tj_max": _s("degC", 30, 150, "GPU junction limit"),
    "gpu.r_jc": _pos("K/W", 1, "junction-to-case resistance"),
    "gpu.r_tim": _nonneg("K/W", 1, "interface material resistance"),
    "gpu.r_sink_ref": _pos("K/W", 1, "cold plate / heatsink resistance at reference flow"),
    "gpu.sink_ref_flow": _pos("L/min", 1e6, "reference flow per GPU for r_sink_ref"),
    "gpu.pcie_lanes": _count(1, 32, "GPU PCIe lanes"),
    "gpu.fabric_links": _count(1, 72, "GPU scale-up links"),
    "gpu.fabric_link_bandwidth": _pos("GB/s", 10000, "scale-up bandwidth per link (bidirectional)"),
    # scale-up fabric requirement
    "fabric.latency": _nonneg("us", 1000, "one-shot all-reduce latency floor"),
    "fabric.required_bandwidth": _pos("GB/s", 100000, "required scale-up bandwidth per GPU per direction"),
    "fabric.allreduce_tokens": _count(1, 65536, "tokens per decode all-reduce"),
    "fabric.hidden_size": _count(1, 131072, "model hidden size"),
    "fabric.bytes_per_element": _pos("B", 8, "bytes per activation element"),
    "fabric.allreduce_budget": _pos("us", 100000, "time budget per all-reduce"),
    # network
    "nic.count": _count(0, 64, "NICs per tray"),
    "nic.line_rate": _pos("Gbit/s", 3200, "NIC line rate"),
    "nic.pcie_lanes": _count(1, 32, "NIC PCIe lanes"),
    "nic.power": _nonneg("W", 500, "NIC power incl. optics"),
    "network.kv_handoff_bytes": _pos("GB", 10000, "KV cache shipped per hand-off"),
    "network.kv_handoff_time": _pos("s", 3600, "hand-off time target"),
    # PCIe
    "pcie.lane_bandwidth": _pos("GB/s", 64, "PCIe bandwidth per lane per direction"),
    "pcie.efficiency": _frac("PCIe payload efficiency"),
    "switch.count": _count(0, 32, "PCIe switches per tray"),
    "switch.lanes": _count(0, 512, "lanes per PCIe switch"),
    "switch.upstream_lanes": _count(0, 64, "switch upstream lanes to the CPU"),
    "switch.gpus_per": _count(0, 16, "GPUs per switch"),
    "switch.nics_per": _count(0, 16, "NICs per switch"),
    "switch.other_lanes": _count(0, 256, "other lanes per switch (NVMe)"),
    "switch.power": _nonneg("W", 1000, "PCIe switch power"),
    # host
    "host.cpu_count": _count(0, 8, "CPUs per tray"),
    "host.cpu_lanes": _count(0, 512, "PCIe lanes per CPU"),
    "host.direct_lanes": _count(0, 512, "lanes used directly on the CPUs"),
    "host.cpu_power": _nonneg("W", 2000, "CPU power each"),
    "host.cpu_loop_fraction": _frac("CPU heat into the cooling loop", lo_open=False),
    "host.dimm_count": _count(0, 64, "DIMMs per tray"),
    "host.dimm_power": _nonneg("W", 100, "power per DIMM"),
    "host.other_power": _nonneg("W", 10000, "drives, BMC, front-end NIC"),
    # tray
    "tray.fan_power": _nonneg("W", 10000, "fan power at peak"),
    "tray.board_power": _nonneg("W", 10000, "baseboard power (retimers, VRs, mgmt)"),
    "tray.conversion_efficiency": _frac("busbar-to-load conversion efficiency"),
    "tray.power_budget": _pos("W", 1e6, "tray power budget"),
    "tray.height": _pos("RU", 60, "tray height"),
    "tray.depth": _pos("mm", 3000, "tray depth"),
    "tray.width": _pos("mm", 1000, "tray width"),
    "tray.weight": _pos("kg", 2000, "tray weight"),
    "tray.max_weight": _pos("kg", 5000, "per-tray load limit of the frame"),
    # rack
    "rack.trays": _count(1, 64, "trays per rack"),
    "rack.switch_trays": _count(0, 64, "switch trays per rack"),
    "rack.switch_tray_power": _nonneg("W", 1e5, "power per switch tray"),
    "rack.switch_tray_height": _nonneg("RU", 60, "height per switch tray"),
    "rack.switch_tray_weight": _nonneg("kg", 2000, "weight per switch tray"),
    "rack.shelves": _count(1, 32, "power shelves per rack"),
    "rack.psus_per_shelf": _count(1, 16, "PSUs per shelf"),
    "rack.psu_rating": _pos("W", 1e5, "PSU rating"),
    "rack.shelf_efficiency": _frac("power shelf AC-to-DC efficiency"),
    "rack.shelf_height": _nonneg("RU", 60, "power shelf height"),
    "rack.shelf_weight": _nonneg("kg", 500, "power shelf weight"),
    "rack.busbar_voltage_min": _pos("V", 1000, "busbar minimum operating voltage"),
    "rack.clip_rating": _pos("A", 1e5, "busbar clip current rating"),
    "rack.busbar_rating": _pos("A", 1e6, "busbar current rating"),
    "rack.feed_limit": _pos("W", 1e7, "facility power per rack"),
    "rack.usable_height": _pos("RU", 60, "usable frame height"),
    "rack.other_height": _nonneg("RU", 60, "other gear height (BBU, CDU, mgmt)"),
    "rack.max_depth": _pos("mm", 3000, "max gear depth in the frame"),
    "rack.opening_width": _pos("mm", 1000, "frame opening width"),
    "rack.frame_weight": _nonneg("kg", 5000, "empty frame weight"),
    "rack.other_weight": _nonneg("kg", 10000, "other gear weight"),
    "rack.max_weight": _pos("kg", 20000, "frame static load rating"),
    "rack.footprint": _pos("m^2", 10, "rack footprint"),
    "rack.floor_rating": _pos("kg/m^2", 1e5, "floor load rating"),
    # cooling
    "cooling.inlet_temp": _s("degC", -20, 90, "coolant inlet temperature"),
    "cooling.tray_flow": _pos("L/min", 1e7, "coolant flow per tray"),
    "cooling.density": _pos("kg/m^3", 3000, "coolant density"),
    "cooling.specific_heat": _pos("J/(kg*K)", 10000, "coolant specific heat"),
    "cooling.flow_exponent": _s("1", 0, 2, "convective resistance flow exponent", lo_open=True),
    "cooling.min_flow_per_kw": _pos("L/min/kW", 1e6, "minimum flow per kW"),
    "cooling.max_delta_t": _pos("K", 100, "max coolant temperature rise"),
    "cooling.max_outlet_temp": _s("degC", -20, 150, "max coolant outlet temperature"),
    "cooling.loop_capacity": _pos("W", 1e7, "cooling loop (CDU) capacity per rack"),
    "cooling.loop_max_flow": _pos("L/min", 1e8, "cooling loop (CDU) rated flow"),
    "cooling.air_capacity": _pos("W", 1e7, "room air cooling per rack"),
    "cooling.flow_sensor_accuracy": _s("1", 0, 1, "flow meter accuracy", lo_open=True),
    "cooling.temp_sensor_accuracy": _pos("K", 10, "temperature sensor accuracy"),
    "cooling.balance_tolerance": _frac("energy balance closure tolerance"),
}

CONFIDENCE = ("measured", "vendor", "estimate", "unspecified")
# A check that reads a constant of one of these confidences cannot PASS; it is CONDITIONAL.
DOUBTFUL = ("vendor", "unspecified")
