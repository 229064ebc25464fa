"""The pint model against a plain float64 re-derivation on fresh random constants, and the
CONDITIONAL rule on constants of each confidence."""

import dataclasses
import math
import random

import pytest

from floorline.machine.checks import evaluate
from floorline.machine.design import resolve, with_overrides


def _random_sets(rng):
    return {
        "gpu.power": rng.uniform(300, 1900), "gpu.peak_factor": rng.uniform(1.0, 1.3),
        "nic.power": rng.uniform(5, 60), "host.cpu_power": rng.uniform(80, 500),
        "tray.fan_power": rng.uniform(0, 600), "tray.conversion_efficiency": rng.uniform(0.85, 0.99),
        "cooling.tray_flow": rng.uniform(6, 40), "cooling.inlet_temp": rng.uniform(15, 45),
        "gpu.loop_fraction": rng.uniform(0.5, 1.0), "rack.trays": rng.randint(1, 12),
    }


@pytest.mark.parametrize("seed", [1, 7, 23, 101])
def test_model_matches_float64_reference(seed):
    rng = random.Random(seed)
    sets = _random_sets(rng)
    d = with_overrides(resolve("mx8-355"), sets)
    v = {k: c.value for k, c in d.constants.items()}  # mx8-355 units: W, L/min, degC, K/W, kg/m^3, J/(kg K)
    rep = evaluate(d)
    der = {k: x["value"] for k, x in rep["derived"].items()}

    others = (v["nic.count"] * v["nic.power"] + v["switch.count"] * v["switch.power"]
              + v["host.cpu_count"] * v["host.cpu_power"] + v["host.dimm_count"] * v["host.dimm_power"]
              + v["host.other_power"] + v["tray.fan_power"] + v["tray.board_power"])
    peak_w = (v["gpu.count"] * v["gpu.power"] * v["gpu.peak_factor"] + others) / v["tray.conversion_efficiency"]
    assert der["tray_peak_power"] == pytest.approx(peak_w / 1000, rel=1e-9)

    loop_w = (v["gpu.count"] * v["gpu.power"] * v["gpu.loop_fraction"]
              + v["host.cpu_count"] * v["host.cpu_power"] * v["host.cpu_loop_fraction"])
    mdot_cp = v["cooling.density"] * v["cooling.specific_heat"] * v["cooling.tray_flow"] / 60000.0  # L/min -> m^3/s
    assert der["coolant_delta_t"] == pytest.approx(loop_w / mdot_cp, rel=1e-9)

    flow_gpu = v["cooling.tray_flow"] / v["gpu.count"]
    r_sink = v["gpu.r_sink_ref"] * (v["gpu.sink_ref_flow"] / flow_gpu) ** v["cooling.flow_exponent"]
    rise = v["gpu.power"] * v["gpu.loop_fraction"] / (mdot_cp / v["gpu.count"])
    tj = v["cooling.inlet_temp"] + rise / 2 + v["gpu.power"] * (v["gpu.r_jc"] + v["gpu.r_tim"] + r_sink)
    assert der["junction_temp"] == pytest.approx(tj, rel=1e-9)

    rack_dc = v["rack.trays"] * peak_w
    assert der["rack_input_power"] == pytest.approx(rack_dc / v["rack.shelf_efficiency"] / 1000, rel=1e-9)

    by = {c["id"]: c for c in rep["checks"]}
    m = (15 - peak_w / 1000) / 15
    assert by["power.tray_peak"]["margin"] == pytest.approx(m, rel=1e-9, abs=1e-12)
    assert (by["power.tray_peak"]["status"] == "FAIL") == (m < 0)


def test_margins_move_the_right_way():
    base = {c["id"]: c["margin"] for c in evaluate(resolve("mx8-355"))["checks"]}
    hot = {c["id"]: c["margin"] for c in evaluate(with_overrides(resolve("mx8-355"), {"gpu.power": 1600}))["checks"]}
    assert hot["power.tray_peak"] < base["power.tray_peak"]
    assert hot["cooling.junction"] < base["cooling.junction"]
    low = {c["id"]: c["margin"] for c in evaluate(with_overrides(resolve("mx8-355"), {"cooling.tray_flow": 12}))["checks"]}
    assert low["cooling.junction"] < base["cooling.junction"]
    assert low["cooling.coolant_dt"] < 0  # 10.8 kW into 12 L/min of PG25 is a ~14 K rise


def test_a_vendor_constant_makes_its_checks_conditional():
    d = resolve("mx8-355")
    consts = dict(d.constants)
    consts["tray.power_budget"] = dataclasses.replace(consts["tray.power_budget"], confidence="vendor")
    by = {c["id"]: c for c in evaluate(dataclasses.replace(d, constants=consts))["checks"]}
    assert by["power.tray_peak"]["status"] == "CONDITIONAL"
    assert "tray.power_budget (vendor)" in by["power.tray_peak"]["reason"]
    assert by["power.busbar_clip"]["status"] == "PASS"  # does not read the budget


def test_fail_beats_conditional():
    d = with_overrides(resolve("mx8-355"), {"gpu.fabric_link_bandwidth": 40})
    by = {c["id"]: c for c in evaluate(d)["checks"]}
    assert by["fabric.gpu_gpu_bandwidth"]["status"] == "FAIL"
    assert by["fabric.gpu_gpu_bandwidth"]["margin"] < 0


def test_margins_are_finite_on_shipped_designs():
    for name in ("mx8-355", "hgx-h200", "gb200-nvl72"):
        for c in evaluate(resolve(name))["checks"]:
            assert math.isfinite(c["margin"]), (name, c["id"])
