"""The checks: each a small function comparing one derived value with one limit.

margin is the fraction of the limit left over (for "at least" checks, the fraction above it); a
temperature check measures its margin against the allowed rise over the coolant inlet, because a
fraction of 95 °C means nothing physical. margin < 0 is FAIL. A check that read any constant of
confidence vendor or unspecified is CONDITIONAL however large its margin: it is never a silent PASS.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from floorline.machine.design import Design
from floorline.machine.model import DERIVED, Ctx, link_bandwidth
from floorline.machine.schema import DOUBTFUL


@dataclass(frozen=True)
class CheckDef:
    id: str
    group: str
    title: str
    unit: str
    formula: str
    fn: Callable


@dataclass(frozen=True)
class Outcome:
    value: object  # pint quantities
    limit: object
    cmp: str  # "<=" or ">="
    ref: object = None  # what the margin is a fraction of (default: the limit)
    unit: str | None = None  # display unit when it depends on the design (air flows read in CFM)


CHECKS: list[CheckDef] = []
GROUPS = ("power", "cooling", "lanes", "fabric", "mechanical")


def check(id: str, group: str, title: str, unit: str, formula: str):
    def deco(fn):
        CHECKS.append(CheckDef(id, group, title, unit, formula, fn))
        return fn

    return deco


def le(value, limit, ref=None) -> Outcome:
    return Outcome(value, limit, "<=", ref)


def ge(value, limit, unit: str | None = None) -> Outcome:
    return Outcome(value, limit, ">=", None, unit)


def _flow_unit(c) -> str:
    return c.design.constants["cooling.tray_flow"].unit


# --- power ---------------------------------------------------------------------------------------

@check("power.device", "power", "GPU power within its rating", "W", "gpu.power <= gpu.power_max")
def _device(c):
    return le(c.k("gpu.power"), c.k("gpu.power_max"))


@check("power.tray_peak", "power", "Tray peak (with conversion losses) within budget", "kW",
       "tray_peak_power <= tray.power_budget")
def _tray_peak(c):
    return le(c.d("tray_peak_power"), c.k("tray.power_budget"))


@check("power.shelf_n1", "power", "Power shelves carry the rack with one PSU out per shelf", "kW",
       "rack_dc_power <= shelf_capacity_n1")
def _shelf(c):
    return le(c.d("rack_dc_power"), c.d("shelf_capacity_n1"))


@check("power.busbar_clip", "power", "Tray current within the busbar clip", "A", "tray_current <= rack.clip_rating")
def _clip(c):
    return le(c.d("tray_current"), c.k("rack.clip_rating"))


@check("power.busbar_rack", "power", "Rack current within the busbar rating", "A", "rack_current <= rack.busbar_rating")
def _busbar(c):
    return le(c.d("rack_current"), c.k("rack.busbar_rating"))


@check("power.rack_total", "power", "Rack input power within the facility feed", "kW", "rack_input_power <= rack.feed_limit")
def _rack_total(c):
    return le(c.d("rack_input_power"), c.k("rack.feed_limit"))


# --- cooling -------------------------------------------------------------------------------------

def _allowed_rise(c, limit_key):
    return c.k(limit_key).to("K") - c.k("cooling.inlet_temp").to("K")


@check("cooling.flow_per_kw", "cooling", "Coolant flow per kW of loop heat", "L/min/kW",
       "cooling.tray_flow / tray_loop_heat >= cooling.min_flow_per_kw")
def _flow_per_kw(c):
    unit = f"{_flow_unit(c)}/kW"
    return ge((c.k("cooling.tray_flow") / c.d("tray_loop_heat")).to(unit), c.k("cooling.min_flow_per_kw"), unit)


@check("cooling.coolant_dt", "cooling", "Coolant temperature rise across the tray", "K",
       "coolant_delta_t <= cooling.max_delta_t")
def _dt(c):
    return le(c.d("coolant_delta_t"), c.k("cooling.max_delta_t"))


@check("cooling.outlet_temp", "cooling", "Coolant outlet temperature", "degC",
       "coolant_outlet_temp <= cooling.max_outlet_temp (margin over the allowed rise from the inlet)")
def _outlet(c):
    return le(c.d("coolant_outlet_temp"), c.k("cooling.max_outlet_temp"), _allowed_rise(c, "cooling.max_outlet_temp"))


@check("cooling.junction", "cooling", "Hottest GPU junction through the thermal chain", "degC",
       "junction_temp <= gpu.tj_max (margin over the allowed rise from the inlet)")
def _junction(c):
    return le(c.d("junction_temp"), c.k("gpu.tj_max"), _allowed_rise(c, "gpu.tj_max"))


@check("cooling.cdu_rack", "cooling", "Rack loop heat within the CDU (or room air) capacity", "kW",
       "rack_loop_heat <= cooling.loop_capacity")
def _cdu(c):
    return le(c.d("rack_loop_heat"), c.k("cooling.loop_capacity"))


@check("cooling.cdu_flow", "cooling", "Rack coolant flow within the CDU rating", "L/min", "rack_flow <= cooling.loop_max_flow")
def _cdu_flow(c):
    return Outcome(c.d("rack_flow"), c.k("cooling.loop_max_flow"), "<=", None, _flow_unit(c))


@check("cooling.air_heat", "cooling", "Heat left on air per rack", "kW", "rack_air_heat <= cooling.air_capacity")
def _air(c):
    return le(c.d("rack_air_heat"), c.k("cooling.air_capacity"))


@check("cooling.energy_balance", "cooling", "Loop energy balance closes within tolerance", "%",
       "sqrt(cooling.flow_sensor_accuracy² + 2·(cooling.temp_sensor_accuracy / coolant_delta_t)²) <= cooling.balance_tolerance")
def _balance(c):
    # Q = rho·c_p·V·dT from a flow meter and two temperature sensors; their errors add in quadrature.
    dt = c.d("coolant_delta_t").to("K").magnitude
    t_acc = c.k("cooling.temp_sensor_accuracy").to("K").magnitude
    rel = math.sqrt(c.n("cooling.flow_sensor_accuracy") ** 2 + 2 * (t_acc / dt) ** 2) if dt > 0 else math.inf
    from floorline.machine.units import Q

    return le(Q(100 * rel, "percent"), Q(100 * c.n("cooling.balance_tolerance"), "percent"))


# --- lanes ---------------------------------------------------------------------------------------

@check("lanes.gpu_link", "lanes", "GPU PCIe link carries its NIC share", "GB/s",
       "gpu.pcie_lanes × pcie.lane_bandwidth × pcie.efficiency >= nic_bandwidth_per_gpu")
def _gpu_link(c):
    return ge(link_bandwidth(c, c.n("gpu.pcie_lanes")), c.d("nic_bandwidth_per_gpu").to("GB/s"))


@check("lanes.nic_link", "lanes", "NIC PCIe link carries its line rate", "GB/s",
       "nic.pcie_lanes × pcie.lane_bandwidth × pcie.efficiency >= nic.line_rate")
def _nic_link(c):
    return ge(link_bandwidth(c, c.n("nic.pcie_lanes")), c.k("nic.line_rate").to("GB/s"))


@check("lanes.switch", "lanes", "Lanes on each PCIe switch", "lanes", "switch_lanes_used <= switch.lanes")
def _switch(c):
    from floorline.machine.units import Q

    if c.n("switch.count") == 0:  # no switch: nothing to overflow, the limit is what is attached (none)
        return le(Q(0, "dimensionless"), Q(0, "dimensionless"))
    return le(Q(c.d("switch_lanes_used"), "dimensionless"), Q(c.n("switch.lanes"), "dimensionless"))


@check("lanes.cpu", "lanes", "CPU PCIe lanes", "lanes", "cpu_lanes_used <= host.cpu_count × host.cpu_lanes")
def _cpu(c):
    from floorline.machine.units import Q

    have = c.n("host.cpu_count") * c.n("host.cpu_lanes")
    return le(Q(c.d("cpu_lanes_used"), "dimensionless"), Q(have, "dimensionless"))


@check("lanes.nic_per_gpu", "lanes", "Scale-out bandwidth per GPU", "Gbit/s",
       "nic_bandwidth_per_gpu >= required_network_per_gpu")
def _nic_per_gpu(c):
    return ge(c.d("nic_bandwidth_per_gpu"), c.d("required_network_per_gpu"))


# --- fabric --------------------------------------------------------------------------------------

@check("fabric.gpu_gpu_bandwidth", "fabric", "GPU-GPU bandwidth per GPU", "GB/s",
       "scaleup_bandwidth_per_gpu >= fabric.required_bandwidth")
def _scaleup(c):
    return ge(c.d("scaleup_bandwidth_per_gpu"), c.k("fabric.required_bandwidth"))


@check("fabric.allreduce_time", "fabric", "Decode all-reduce within its budget", "us",
       "allreduce_time <= fabric.allreduce_budget")
def _allreduce(c):
    return le(c.d("allreduce_time"), c.k("fabric.allreduce_budget"))


# --- mechanical ----------------------------------------------------------------------------------

@check("mechanical.height", "mechanical", "Rack units used", "RU", "rack_height_used <= rack.usable_height")
def _height(c):
    return le(c.d("rack_height_used"), c.k("rack.usable_height"))


@check("mechanical.depth", "mechanical", "Tray depth fits the frame", "mm", "tray.depth <= rack.max_depth")
def _depth(c):
    return le(c.k("tray.depth"), c.k("rack.max_depth"))


@check("mechanical.width", "mechanical", "Tray width fits the frame opening", "mm", "tray.width <= rack.opening_width")
def _width(c):
    return le(c.k("tray.width"), c.k("rack.opening_width"))


@check("mechanical.tray_weight", "mechanical", "Tray weight within the per-tray load limit", "kg", "tray.weight <= tray.max_weight")
def _tray_weight(c):
    return le(c.k("tray.weight"), c.k("tray.max_weight"))


@check("mechanical.rack_weight", "mechanical", "Rack weight within the frame rating", "kg", "rack_weight <= rack.max_weight")
def _rack_weight(c):
    return le(c.d("rack_weight"), c.k("rack.max_weight"))


@check("mechanical.floor_load", "mechanical", "Floor loading under the rack", "kg/m^2",
       "rack_weight / rack.footprint <= rack.floor_rating")
def _floor(c):
    return le((c.d("rack_weight") / c.k("rack.footprint")).to("kg/m^2"), c.k("rack.floor_rating"))


# --- evaluation ----------------------------------------------------------------------------------

def _mag(q, unit: str) -> float:
    if unit in ("lanes", "%"):  # pint spells these dimensionless / percent
        return float(q.to("dimensionless" if unit == "lanes" else "percent").magnitude)
    return float(q.to(unit).magnitude)


def _margin(o: Outcome) -> float:
    v, lim = o.value.to_base_units().magnitude, o.limit.to(o.value.units).to_base_units().magnitude
    if o.cmp == ">=":
        ref = lim
        diff = v - lim
    else:
        ref = lim if o.ref is None else o.ref.to_base_units().magnitude
        diff = lim - v
    if ref == 0:
        return 0.0 if diff >= 0 else -math.inf
    return diff / abs(ref)


def evaluate(design: Design, only: str | None = None) -> dict:
    """Every check (or one) on design: the --json shape, plus per-check inputs for explain."""
    ctx = Ctx(design)
    rows = []
    for cd in CHECKS:
        if only and cd.id != only:
            continue
        out, keys, names = ctx.trace(cd.fn)
        unit = out.unit or cd.unit
        value, limit = _mag(out.value, unit), _mag(out.limit, unit)
        margin = _margin(out)
        doubtful = sorted(k for k in keys if design.constants[k].confidence in DOUBTFUL)
        status = "FAIL" if (math.isnan(margin) or margin < 0) else ("CONDITIONAL" if doubtful else "PASS")
        rows.append({
            "id": cd.id, "group": cd.group, "title": cd.title, "value": value, "unit": unit, "limit": limit,
            "margin": margin, "status": status, "reason": _reason(unit, value, limit, out.cmp, margin, doubtful, design),
            "_inputs": sorted(keys), "_derived": [n for n in DERIVED if n in names], "_formula": cd.formula,
        })
    summary = {s.lower(): sum(r["status"] == s for r in rows) for s in ("PASS", "CONDITIONAL", "FAIL")}
    derived = {}
    for name, d in DERIVED.items():
        q = ctx.d(name)
        mag = float(q) if not hasattr(q, "to") else float(q.to(d.unit if d.unit != "1" else "dimensionless").magnitude)
        derived[name] = {"value": mag, "unit": d.unit}
    return {"design": design.name, "checks": rows, "summary": summary, "derived": derived}


def public(report: dict) -> dict:
    """The documented --json shape (drops the private _ fields explain uses)."""
    checks = [{k: v for k, v in r.items() if not k.startswith("_")} for r in report["checks"]]
    return {**report, "checks": checks}


def _fmt(x: float) -> str:
    if not math.isfinite(x):
        return str(x)
    return f"{x:.4g}" if abs(x) < 1e5 else f"{x:,.0f}"


def _reason(unit, value, limit, cmp, margin, doubtful, design) -> str:
    unit = "" if unit == "lanes" else " °C" if unit == "degC" else f" {unit}"
    rel = {"<=": "≤", ">=": "≥"}[cmp]
    if math.isnan(margin) or margin < 0:
        text = f"{_fmt(value)}{unit} breaks the limit ({rel} {_fmt(limit)}{unit})"
    else:
        text = f"{_fmt(value)}{unit} {rel} {_fmt(limit)}{unit}"
    if doubtful:
        named = ", ".join(f"{k} ({design.constants[k].confidence})" for k in doubtful)
        text += f"; rests on {named}, so not a clean pass"
    return text
