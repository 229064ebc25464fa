"""The default design reproduces the seed's published results (issue 3, item 3)."""

from floorline.machine.checks import evaluate
from floorline.machine.design import resolve


def _rep():
    return evaluate(resolve("mx8-355"))


def test_27_checks_24_pass_3_conditional_0_fail():
    rep = _rep()
    assert len(rep["checks"]) == 27
    assert rep["summary"] == {"pass": 24, "conditional": 3, "fail": 0}
    cond = {c["id"] for c in rep["checks"] if c["status"] == "CONDITIONAL"}
    # seed: two fabric bandwidths from vendor figures and an energy balance waiting on sensors
    assert cond == {"fabric.gpu_gpu_bandwidth", "fabric.allreduce_time", "cooling.energy_balance"}


def test_tray_peak_near_14_5_kw_under_15_kw():
    rep = _rep()
    peak = rep["derived"]["tray_peak_power"]
    assert peak["unit"] == "kW"
    assert abs(peak["value"] - 14.5) / 14.5 <= 0.03
    row = next(c for c in rep["checks"] if c["id"] == "power.tray_peak")
    assert row["limit"] == 15 and row["status"] == "PASS"


def test_hottest_junction_near_72_against_95():
    rep = _rep()
    row = next(c for c in rep["checks"] if c["id"] == "cooling.junction")
    assert row["unit"] == "degC"
    assert abs(row["value"] - 72) <= 3
    assert row["limit"] == 95 and row["status"] == "PASS"


def test_six_trays_per_rack_under_100_kw():
    d = resolve("mx8-355")
    assert d.constants["rack.trays"].value == 6
    rep = _rep()
    assert rep["derived"]["rack_input_power"]["value"] < 100
    by = {c["id"]: c for c in rep["checks"]}
    assert by["cooling.cdu_rack"]["limit"] == 100 and by["cooling.cdu_rack"]["status"] == "PASS"
    assert by["power.rack_total"]["status"] == "PASS"


def test_conditional_reasons_name_the_constant():
    by = {c["id"]: c for c in _rep()["checks"]}
    assert "gpu.fabric_link_bandwidth (vendor)" in by["fabric.gpu_gpu_bandwidth"]["reason"]
    assert "gpu.fabric_link_bandwidth (vendor)" in by["fabric.allreduce_time"]["reason"]
    assert "cooling.flow_sensor_accuracy (unspecified)" in by["cooling.energy_balance"]["reason"]
