"""`floorline machine ...` through the real entry point: JSON shape, exit codes, one-line errors."""

import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from floorline.cli import main
from floorline.errors import InputError
from floorline.machine.design import resolve, with_overrides
from floorline.machine.schema import KEYS


def run(capsys, *argv):
    with pytest.raises(SystemExit) as e:
        main(list(argv))
    out, err = capsys.readouterr()
    return e.value.code, out, err


def test_check_json_shape(capsys):
    code, out, _ = run(capsys, "machine", "check", "--json")
    assert code == 0
    rep = json.loads(out)
    assert set(rep) == {"design", "checks", "summary", "derived"}
    assert rep["design"] == "mx8-355"
    assert set(rep["summary"]) == {"pass", "conditional", "fail"}
    for c in rep["checks"]:
        assert set(c) == {"id", "group", "title", "value", "unit", "limit", "margin", "status", "reason"}
    for d in rep["derived"].values():
        assert set(d) == {"value", "unit"}


def test_check_exit_1_on_fail(capsys):
    code, out, _ = run(capsys, "machine", "check", "mx8-355", "--set", "gpu.power=1.6 kW", "--json")
    assert code == 1
    by = {c["id"]: c for c in json.loads(out)["checks"]}
    assert by["power.device"]["status"] == "FAIL" and by["power.device"]["value"] == pytest.approx(1600)


@pytest.mark.parametrize("args, needle", [
    (["--set", "gpu.pwr=1"], "gpu.pwr"),
    (["--set", "gpu.power=abc"], "gpu.power: not a number"),
    (["--set", "gpu.power=-5"], "gpu.power: must be a number > 0"),
    (["--set", "cooling.tray_flow=0"], "cooling.tray_flow: must be a number > 0"),
    (["--set", "cooling.tray_flow=0 L/min"], "got 0 L/min"),  # the user's own spelling, not pint's
    (["--set", "gpu.power=nan"], "gpu.power: must be"),
    (["--set", "gpu.power=inf"], "gpu.power: must be"),
    (["--set", "gpu.power=3 kg"], "gpu.power: unit"),
    (["--set", "rack.trays=2.5"], "rack.trays: must be an integer"),
    (["no-such-design"], "design 'no-such-design': unknown"),
    (["--set", "novalue"], "expected KEY=VALUE"),
])
def test_bad_input_one_line_exit_2(capsys, args, needle):
    code, out, err = run(capsys, "machine", "check", *args)
    assert code == 2
    assert needle in err
    assert len(err.strip().splitlines()) == 1
    assert "Traceback" not in err and out == ""


def test_malformed_toml_path_exit_2(capsys, tmp_path):
    p = tmp_path / "x.toml"
    p.write_text("[design\nname=")
    code, _, err = run(capsys, "machine", "check", str(p))
    assert code == 2 and "malformed TOML" in err


def test_explain_lists_inputs_with_sources(capsys):
    code, out, _ = run(capsys, "machine", "explain", "fabric.allreduce_time", "--json")
    assert code == 0
    ex = json.loads(out)
    keys = {i["key"]: i for i in ex["inputs"]}
    assert keys["gpu.fabric_link_bandwidth"]["confidence"] == "vendor"
    assert all(i["source"] for i in ex["inputs"])
    assert ex["check"]["status"] == "CONDITIONAL" and "allreduce_time" in ex["formula"]


def test_explain_unknown_check_exit_2(capsys):
    code, _, err = run(capsys, "machine", "explain", "power.nope")
    assert code == 2 and "allowed: one of power.device" in err


def test_sweep_finds_first_fail(capsys):
    code, out, _ = run(capsys, "machine", "sweep", "cooling.tray_flow", "30", "10", "--steps", "5", "--json")
    assert code == 0
    res = json.loads(out)
    assert res["values"][0] == 30 and res["values"][-1] == 10
    f = res["first_fail"]
    # 30 L/min breaks the 150 L/min CDU rating at 6 trays already; the sweep says so
    assert f["check"] == "cooling.cdu_flow" and f["already_failing"]
    code, out, _ = run(capsys, "machine", "sweep", "cooling.tray_flow", "24", "10", "--json")
    f = json.loads(out)["first_fail"]
    assert f["check"] == "cooling.coolant_dt" and 16 < f["value"] < 18.5


def test_sweep_bad_steps_exit_2(capsys):
    code, _, err = run(capsys, "machine", "sweep", "gpu.power", "1000", "2000", "--steps", "1")
    assert code == 2 and "--steps" in err


def test_list_and_keys(capsys):
    code, out, _ = run(capsys, "machine", "list", "--json")
    names = {d["name"] for d in json.loads(out)["designs"]}
    assert {"mx8-355", "hgx-h200", "gb200-nvl72"} <= names
    code, out, _ = run(capsys, "machine", "keys", "hgx-h200", "--json")
    keys = {k["key"]: k for k in json.loads(out)["keys"]}
    assert keys["cooling.tray_flow"]["unit"] == "CFM" and "allowed" in keys["gpu.power"]


def test_check_help_says_where_keys_are(capsys):
    code, out, _ = run(capsys, "machine", "check", "--help")
    assert code == 0 and "floorline machine keys" in out


@settings(max_examples=200, deadline=None)
@given(key=st.one_of(st.sampled_from(sorted(KEYS)), st.text(max_size=12)),
       raw=st.one_of(st.text(max_size=16), st.floats(allow_nan=True, allow_infinity=True),
                     st.sampled_from(["1.5 kW", "20 L/min", "3 kg", "1e999", "nan W", "-0", "40 degC", "5 CFM", "1/0"])))
def test_set_values_either_apply_or_raise_input_error(key, raw):
    """Whatever follows --set, the result is a finite in-range value or a one-line InputError."""
    d = resolve("mx8-355")
    try:
        out = with_overrides(d, {key: raw})
    except InputError as e:
        assert "\n" not in str(e)
        return
    v = out.constants[key]
    assert math.isfinite(v.value) and v.overridden
