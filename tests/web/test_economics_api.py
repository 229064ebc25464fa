"""The economics API through FastAPI's TestClient on the real app: numbers, 422s, never a 500."""

from __future__ import annotations

import importlib.util

import pytest

if importlib.util.find_spec("floorline.web.app") is None:  # pragma: no cover - built by the machine page
    pytest.skip("floorline/web/app.py does not exist yet", allow_module_level=True)
pytest.importorskip("fastapi")
pytest.importorskip("httpx")

from fastapi.testclient import TestClient  # noqa: E402
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from floorline.web.app import create_app  # noqa: E402


@pytest.fixture(scope="module")
def client():
    return TestClient(create_app())


def test_page_and_assets_are_served(client):
    html = client.get("/economics.html")
    assert html.status_code == 200 and "economics.js" in html.text and "style.css" in html.text
    assert client.get("/economics.js").status_code == 200
    assert "http" not in html.text.split("<body>")[0].replace("http-equiv", "")  # no CDN in the head


def test_defaults_list_the_catalog(client):
    d = client.get("/api/economics/defaults").json()
    assert {x["key"] for x in d["devices"]} >= {"h100", "b200", "gb200-nvl72", "mi355x"}
    assert d["serving"]["rack_it_kw"]["value"] == 132


def test_serving_matches_the_formula(client):
    r = client.post("/api/economics/serving", json={"tokens_per_s": 2173}).json()
    rack_hour = 3.9e6 / 3 / 8760 + 132 * 1.2 * 0.10
    assert r["rack_hour_usd"] == pytest.approx(rack_hour)
    assert r["usd_per_m_output_tokens"] == pytest.approx(rack_hour / 72 * 1e6 / (2173 * 3600))
    assert r["target"]["gpus"] == pytest.approx(1e9 / 3600 / 2173)  # seed 002: 127.8 GPU-equivalents
    assert round(r["target"]["gpus"], 1) == 127.8


def test_sliders_move_the_price(client):
    base = client.post("/api/economics/serving", json={"tokens_per_s": 1000, "hardware_usd_per_gpu_hour": 2}).json()
    pricier = client.post("/api/economics/serving", json={"tokens_per_s": 1000, "hardware_usd_per_gpu_hour": 2,
                                                           "pue": 1.5, "usd_per_kwh": 0.2}).json()
    assert pricier["usd_per_m_output_tokens"] > base["usd_per_m_output_tokens"]
    assert base["rack_hour_capex_usd"] == pytest.approx(2 * 72)


def test_capacity_block(client):
    r = client.post("/api/economics/capacity", json={"before": 2173, "after": 12576}).json()
    assert round(r["freed_racks"], 2) == 1.47 and round(r["usd_per_day"]) == 558


def test_training(client):
    r = client.post("/api/economics/training", json={"total_params": "4T"}).json()
    assert round(r["racks"]) == 762


@pytest.mark.parametrize("path,body,field", [
    ("/api/economics/serving", {"tokens_per_s": 0}, "tokens_per_s"),
    ("/api/economics/serving", {"tokens_per_s": -5}, "tokens_per_s"),
    ("/api/economics/serving", {"tokens_per_s": 100, "pue": -1}, "pue"),
    ("/api/economics/serving", {"tokens_per_s": 100, "usd_per_kwh": "cheap"}, "usd_per_kwh"),
    ("/api/economics/serving", {"tokens_per_s": 100, "colour": 1}, "colour"),
    ("/api/economics/serving", {}, "tokens_per_s"),
    ("/api/economics/capacity", {"before": 0}, "before"),
    ("/api/economics/training", {"usd_per_gpu_hour": -1}, "usd_per_gpu_hour"),
    ("/api/economics/training", {"gpu": "h100", "precision": "fp4"}, "precision"),
    ("/api/economics/training", {"gpu": 5}, "gpu"),
])
def test_bad_input_is_422_naming_the_field(client, path, body, field):
    r = client.post(path, json=body)
    assert r.status_code == 422
    detail = r.json()["detail"]
    assert field in detail and "\n" not in detail


def test_unknown_device_is_422(client):
    assert client.get("/api/economics/hw/tpu9").status_code == 422
    assert client.get("/api/economics/hw/h100").json()["fields"]["hbm_bw"]["value"] == 3.35


json_values = st.recursive(st.none() | st.booleans() | st.floats(allow_nan=True, allow_infinity=True)
                           | st.integers(-10**30, 10**30) | st.text(max_size=6),
                           lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=5), c, max_size=3),
                           max_leaves=6)
fields = st.sampled_from(["tokens_per_s", "pue", "usd_per_kwh", "rack_kw", "gpus_per_rack", "tokens_per_hour",
                          "hardware_usd_per_gpu_hour", "usd_per_gpu_hour", "before", "after", "total_params", "gpu",
                          "precision", "mfu", "days", "available_tokens", "input_tokens_per_s", "years"])


@settings(max_examples=150, deadline=None)
@given(path=st.sampled_from(["/api/economics/serving", "/api/economics/capacity", "/api/economics/training"]),
       body=st.dictionaries(fields, json_values, max_size=5) | json_values)
def test_never_500(client, path, body):
    import json

    r = client.post(path, content=json.dumps(body, allow_nan=True))
    assert r.status_code in (200, 422), (body, r.text)
