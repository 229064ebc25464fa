"""The machine rebuilt from its constants: derived quantities, each a small formula with units.

Every read of a constant goes through Ctx, which records it, so each derived number and each check
knows exactly which constants it rests on. That is what makes a check CONDITIONAL (it read a vendor
or unspecified constant) and what `floorline machine explain` prints as the inputs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from floorline.machine.design import Design


@dataclass(frozen=True)
class Derived:
    name: str
    unit: str  # display unit
    formula: str
    fn: Callable


DERIVED: dict[str, Derived] = {}


def derived(name: str, unit: str, formula: str):
    def deco(fn):
        DERIVED[name] = Derived(name, unit, formula, fn)
        return fn

    return deco


class Ctx:
    """Reads constants and derived values for one design, recording which constants (and which derived
    values) each computation used."""

    def __init__(self, design: Design):
        self.design = design
        self._memo: dict[str, tuple[object, frozenset[str], frozenset[str]]] = {}
        self._stack: list[tuple[set[str], set[str]]] = [(set(), set())]  # (constant keys, derived names)

    def k(self, key: str):
        self._stack[-1][0].add(key)
        return self.design.constants[key].quantity()

    def n(self, key: str) -> float:
        """A count or a fraction as a plain float (still recorded)."""
        return float(self.k(key).to("dimensionless").magnitude)

    def d(self, name: str):
        if name not in self._memo:
            self._stack.append((set(), set()))
            try:
                value = DERIVED[name].fn(self)
            finally:
                keys, names = self._stack.pop()
            self._memo[name] = (value, frozenset(keys), frozenset(names))
        value, keys, names = self._memo[name]
        top_keys, top_names = self._stack[-1]
        top_keys |= keys
        top_names |= names | {name}
        return value

    def trace(self, fn: Callable):
        """Run fn(self); return (its result, the constants it read, the derived values it used)."""
        self._stack.append((set(), set()))
        try:
            out = fn(self)
        finally:
            keys, names = self._stack.pop()
        return out, keys, names


# --- power ---------------------------------------------------------------------------------------

@derived("gpu_peak_power", "W", "gpu.power × gpu.peak_factor")
def _gpu_peak(c):
    return c.k("gpu.power") * c.n("gpu.peak_factor")


def _host_and_board(c):
    """Everything on the tray that is not a GPU, at its peak."""
    return (c.n("nic.count") * c.k("nic.power") + c.n("switch.count") * c.k("switch.power")
            + c.n("host.cpu_count") * c.k("host.cpu_power") + c.n("host.dimm_count") * c.k("host.dimm_power")
            + c.k("host.other_power") + c.k("tray.fan_power") + c.k("tray.board_power"))


@derived("tray_peak_power", "kW",
         "(gpu.count × gpu_peak_power + NICs + switches + CPUs + DIMMs + other + fans + board) / tray.conversion_efficiency")
def _tray_peak(c):
    load = c.n("gpu.count") * c.d("gpu_peak_power") + _host_and_board(c)
    return (load / c.n("tray.conversion_efficiency")).to("kW")


@derived("tray_sustained_power", "kW", "same as tray_peak_power with gpu.power instead of the transient peak")
def _tray_sustained(c):
    load = c.n("gpu.count") * c.k("gpu.power") + _host_and_board(c)
    return (load / c.n("tray.conversion_efficiency")).to("kW")


@derived("tray_current", "A", "tray_peak_power / rack.busbar_voltage_min")
def _tray_current(c):
    return (c.d("tray_peak_power") / c.k("rack.busbar_voltage_min")).to("A")


@derived("rack_dc_power", "kW", "rack.trays × tray_peak_power + rack.switch_trays × rack.switch_tray_power")
def _rack_dc(c):
    return (c.n("rack.trays") * c.d("tray_peak_power") + c.n("rack.switch_trays") * c.k("rack.switch_tray_power")).to("kW")


@derived("rack_input_power", "kW", "rack_dc_power / rack.shelf_efficiency")
def _rack_in(c):
    return (c.d("rack_dc_power") / c.n("rack.shelf_efficiency")).to("kW")


@derived("rack_current", "A", "rack_dc_power / rack.busbar_voltage_min")
def _rack_current(c):
    return (c.d("rack_dc_power") / c.k("rack.busbar_voltage_min")).to("A")


@derived("shelf_capacity_n1", "kW", "rack.shelves × (rack.psus_per_shelf − 1) × rack.psu_rating")
def _shelf_n1(c):
    return (c.n("rack.shelves") * (c.n("rack.psus_per_shelf") - 1) * c.k("rack.psu_rating")).to("kW")


# --- cooling -------------------------------------------------------------------------------------
# Heat uses sustained power (thermal time constants are seconds, GPU transients milliseconds);
# supplies and busbars see the transient peak.

@derived("tray_loop_heat", "kW", "gpu.count × gpu.power × gpu.loop_fraction + host.cpu_count × host.cpu_power × host.cpu_loop_fraction")
def _loop_heat(c):
    gpu = c.n("gpu.count") * c.k("gpu.power") * c.n("gpu.loop_fraction")
    cpu = c.n("host.cpu_count") * c.k("host.cpu_power") * c.n("host.cpu_loop_fraction")
    return (gpu + cpu).to("kW")


@derived("tray_air_heat", "kW", "tray_sustained_power − tray_loop_heat (for an air-cooled design: all of it)")
def _air_heat(c):
    total = c.d("tray_sustained_power")
    return total if c.design.medium == "air" else (total - c.d("tray_loop_heat")).to("kW")


def _heat_capacity_rate(c, flow):
    return c.k("cooling.density") * c.k("cooling.specific_heat") * flow


@derived("coolant_delta_t", "K", "tray_loop_heat / (cooling.density × cooling.specific_heat × cooling.tray_flow)")
def _dt(c):
    return (c.d("tray_loop_heat") / _heat_capacity_rate(c, c.k("cooling.tray_flow"))).to("K")


@derived("coolant_outlet_temp", "degC", "cooling.inlet_temp + coolant_delta_t")
def _outlet(c):
    return (c.k("cooling.inlet_temp").to("K") + c.d("coolant_delta_t")).to("degC")


@derived("flow_per_gpu", "L/min", "cooling.tray_flow / gpu.count (cold plates in parallel)")
def _flow_gpu(c):
    return (c.k("cooling.tray_flow") / c.n("gpu.count")).to("L/min")


@derived("r_sink", "K/W", "gpu.r_sink_ref × (gpu.sink_ref_flow / flow_per_gpu) ^ cooling.flow_exponent")
def _r_sink(c):
    ratio = float((c.k("gpu.sink_ref_flow") / c.d("flow_per_gpu")).to("dimensionless").magnitude)
    return c.k("gpu.r_sink_ref") * ratio ** c.n("cooling.flow_exponent")


@derived("junction_temp", "degC",
         "cooling.inlet_temp + ½·(gpu.power × gpu.loop_fraction / (ρ·c_p·flow_per_gpu)) + gpu.power × (gpu.r_jc + gpu.r_tim + r_sink)")
def _tj(c):
    p = c.k("gpu.power")
    fluid_rise = (p * c.n("gpu.loop_fraction") / _heat_capacity_rate(c, c.d("flow_per_gpu"))).to("K")
    chain = (p * (c.k("gpu.r_jc") + c.k("gpu.r_tim") + c.d("r_sink"))).to("K")
    # the hottest junction sits over the mean fluid temperature of its plate: inlet + half the rise
    return (c.k("cooling.inlet_temp").to("K") + 0.5 * fluid_rise + chain).to("degC")


@derived("rack_loop_heat", "kW", "rack.trays × tray_loop_heat (all rack heat for an air-cooled design)")
def _rack_loop(c):
    per_tray = c.d("tray_sustained_power") if c.design.medium == "air" else c.d("tray_loop_heat")
    return (c.n("rack.trays") * per_tray).to("kW")


@derived("rack_air_heat", "kW", "rack.trays × tray_air_heat + rack.switch_trays × rack.switch_tray_power + shelf losses")
def _rack_air(c):
    shelf_loss = c.d("rack_input_power") - c.d("rack_dc_power")
    return (c.n("rack.trays") * c.d("tray_air_heat") + c.n("rack.switch_trays") * c.k("rack.switch_tray_power")
            + shelf_loss).to("kW")


@derived("rack_flow", "L/min", "rack.trays × cooling.tray_flow")
def _rack_flow(c):
    return (c.n("rack.trays") * c.k("cooling.tray_flow")).to("L/min")


# --- lanes and fabric ----------------------------------------------------------------------------

def link_bandwidth(c, lanes: float):
    return (lanes * c.k("pcie.lane_bandwidth") * c.n("pcie.efficiency")).to("GB/s")


@derived("switch_lanes_used", "1",
         "switch.gpus_per × gpu.pcie_lanes + switch.nics_per × nic.pcie_lanes + switch.upstream_lanes + switch.other_lanes")
def _sw_lanes(c):
    return (c.n("switch.gpus_per") * c.n("gpu.pcie_lanes") + c.n("switch.nics_per") * c.n("nic.pcie_lanes")
            + c.n("switch.upstream_lanes") + c.n("switch.other_lanes"))


@derived("cpu_lanes_used", "1", "switch.count × switch.upstream_lanes + host.direct_lanes")
def _cpu_lanes(c):
    return c.n("switch.count") * c.n("switch.upstream_lanes") + c.n("host.direct_lanes")


@derived("nic_bandwidth_per_gpu", "Gbit/s", "nic.count × nic.line_rate / gpu.count")
def _nic_per_gpu(c):
    return (c.n("nic.count") * c.k("nic.line_rate") / c.n("gpu.count")).to("Gbit/s")


@derived("required_network_per_gpu", "Gbit/s", "network.kv_handoff_bytes / network.kv_handoff_time")
def _net_req(c):
    return (c.k("network.kv_handoff_bytes") / c.k("network.kv_handoff_time")).to("Gbit/s")


@derived("scaleup_bandwidth_per_gpu", "GB/s", "gpu.fabric_links × gpu.fabric_link_bandwidth / 2 (per direction)")
def _scaleup(c):
    return (c.n("gpu.fabric_links") * c.k("gpu.fabric_link_bandwidth") / 2).to("GB/s")


@derived("allreduce_bytes", "kB", "fabric.allreduce_tokens × fabric.hidden_size × fabric.bytes_per_element")
def _ar_bytes(c):
    return (c.n("fabric.allreduce_tokens") * c.n("fabric.hidden_size") * c.k("fabric.bytes_per_element")).to("kB")


@derived("allreduce_time", "us",
         "fabric.latency + allreduce_bytes × (gpu.count − 1) / scaleup_bandwidth_per_gpu (one-shot: each GPU pushes its vector to every peer)")
def _ar_time(c):
    peers = c.n("gpu.count") - 1
    return (c.k("fabric.latency") + c.d("allreduce_bytes") * peers / c.d("scaleup_bandwidth_per_gpu")).to("us")


# --- mechanical ----------------------------------------------------------------------------------

@derived("rack_height_used", "RU",
         "rack.trays × tray.height + rack.shelves × rack.shelf_height + rack.switch_trays × rack.switch_tray_height + rack.other_height")
def _height(c):
    return (c.n("rack.trays") * c.k("tray.height") + c.n("rack.shelves") * c.k("rack.shelf_height")
            + c.n("rack.switch_trays") * c.k("rack.switch_tray_height") + c.k("rack.other_height")).to("RU")


@derived("rack_weight", "kg",
         "rack.frame_weight + rack.trays × tray.weight + rack.shelves × rack.shelf_weight + rack.switch_trays × rack.switch_tray_weight + rack.other_weight")
def _weight(c):
    return (c.k("rack.frame_weight") + c.n("rack.trays") * c.k("tray.weight") + c.n("rack.shelves") * c.k("rack.shelf_weight")
            + c.n("rack.switch_trays") * c.k("rack.switch_tray_weight") + c.k("rack.other_weight")).to("kg")
