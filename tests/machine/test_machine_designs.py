"""Designs are data: every constant sourced, every shipped design loads, a user's TOML works the same."""

import re

import pytest

from floorline.errors import InputError
from floorline.machine.checks import evaluate
from floorline.machine.design import DESIGN_DIR, resolve, shipped
from floorline.machine.schema import CONFIDENCE, KEYS


def test_ships_the_three_designs():
    assert set(shipped()) >= {"mx8-355", "hgx-h200", "gb200-nvl72"}


@pytest.mark.parametrize("name", ["mx8-355", "hgx-h200", "gb200-nvl72"])
def test_every_constant_has_unit_source_confidence(name):
    d = resolve(name)
    assert set(d.constants) == set(KEYS)
    for key, c in d.constants.items():
        assert c.confidence in CONFIDENCE, key
        assert len(c.source) > 10, key
        if c.confidence == "unspecified":  # a placeholder must say it is one
            assert re.search(r"placeholder|not (yet )?specified|not published", c.source), key


@pytest.mark.parametrize("name", ["mx8-355", "hgx-h200", "gb200-nvl72"])
def test_shipped_designs_give_a_full_report(name):
    rep = evaluate(resolve(name))
    assert len(rep["checks"]) == 27
    assert sum(rep["summary"].values()) == 27
    for c in rep["checks"]:
        assert c["status"] in ("PASS", "CONDITIONAL", "FAIL")
        assert c["reason"]


def test_gb200_rack_is_about_120_to_140_kw():
    rep = evaluate(resolve("gb200-nvl72"))
    assert 115 <= rep["derived"]["rack_input_power"]["value"] <= 140


def test_user_toml_path_works_the_same(tmp_path):
    text = (DESIGN_DIR / "mx8-355.toml").read_text().replace('name = "mx8-355"', 'name = "mine"')
    text = text.replace('power = { value = 1400, unit = "W"', 'power = { value = 1.6, unit = "kW"', 1)
    p = tmp_path / "mine.toml"
    p.write_text(text)
    d = resolve(str(p))
    assert d.name == "mine"
    by = {c["id"]: c for c in evaluate(d)["checks"]}
    assert by["power.device"]["value"] == pytest.approx(1600)  # kW converted, compared in W
    assert by["power.device"]["status"] == "FAIL"


@pytest.mark.parametrize("edit, needle", [
    (lambda t: t + "\n[oops\n", "malformed TOML"),
    (lambda t: t.replace('unit = "W", confidence = "measured", source = "AMD Instinct MI355X total', 'unit = "kg", confidence = "measured", source = "x', 1), "gpu.power: unit"),
    (lambda t: t.replace("[gpu]\n", "[gpu]\nbogus = { value = 1, unit = \"W\", confidence = \"estimate\", source = \"assumption: x\" }\n", 1), "gpu.bogus"),
    (lambda t: t.replace('confidence = "vendor"', 'confidence = "trust me"', 1), "confidence must be one of"),
    (lambda t: "\n".join(line for line in t.splitlines() if not line.startswith("tj_max")), "missing key gpu.tj_max"),
    (lambda t: t.replace("value = 0.95, unit", "value = -0.95, unit", 1), "gpu.loop_fraction: must be"),
])
def test_bad_toml_is_one_line_input_error(tmp_path, edit, needle):
    p = tmp_path / "bad.toml"
    p.write_text(edit((DESIGN_DIR / "mx8-355.toml").read_text()))
    with pytest.raises(InputError) as e:
        resolve(str(p))
    assert needle in str(e.value)
    assert "\n" not in str(e.value)


def test_unknown_design_names_the_allowed():
    with pytest.raises(InputError, match="allowed: one of .*mx8-355"):
        resolve("no-such-design")
