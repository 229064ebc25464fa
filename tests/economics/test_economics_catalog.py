"""The catalog holds every required device and every number carries a unit, source and confidence."""

from __future__ import annotations

import tomllib

import pytest

from floorline.economics.catalog import CONFIDENCE, HERE, UNIT_SI, assumptions, device, devices, parse_count
from floorline.errors import InputError

REQUIRED = ["h100", "h200", "b200", "b300", "gb200-nvl72", "gb300-nvl72", "vera-rubin-nvl72", "mi300x", "mi355x"]
FIELDS = ["hbm_capacity", "hbm_bw", "scale_up_bw", "power", "usd_per_gpu_hour"]


def test_every_device_is_there_with_the_core_fields():
    devs = devices()
    for key in REQUIRED:
        assert key in devs
        for f in FIELDS:
            assert devs[key].get(f) is not None, (key, f)
        assert any(devs[key].get(p) for p in ("bf16_dense", "fp8_dense", "fp4_dense"))


def test_every_constant_has_unit_source_confidence():
    raw = tomllib.loads((HERE / "hardware.toml").read_text())
    n = 0
    for key, body in raw["devices"].items():
        for field, q in body.items():
            if field in ("name", "vendor"):
                continue
            n += 1
            assert set(q) == {"value", "unit", "source", "confidence"}, (key, field)
            assert q["unit"] in UNIT_SI and q["confidence"] in CONFIDENCE
            assert len(q["source"]) > 10, (key, field)
    assert n >= 9 * 7
    for group in assumptions().values():
        for q in group.values():
            assert q.source and q.unit and q.confidence in CONFIDENCE


def test_fp4_only_where_the_hardware_has_it():
    assert device("h100").get("fp4_dense") is None and device("mi300x").get("fp4_dense") is None
    with pytest.raises(InputError, match="no dense fp4"):
        device("h100").peak_flops("fp4")
    assert device("b300").si("fp4_dense") > device("b200").si("fp4_dense")
    assert device("b300").si("bf16_dense") == device("b200").si("bf16_dense")  # seed 003: identical at BF16


@pytest.mark.parametrize("text,value", [("2T", 2e12), ("70B", 70e9), ("70e9", 70e9), ("1.5k", 1500), ("100T", 1e14)])
def test_parse_count(text, value):
    assert parse_count(text, "--x") == value


@pytest.mark.parametrize("text", ["-1", "0", "abc", "nan", "2X"])
def test_parse_count_rejects(text):
    with pytest.raises(InputError, match="--x"):
        parse_count(text, "--x")
