"""The machine API: same checks as the CLI, 422 with a one-line message on bad input, never a 500."""

import json

import pytest

pytest.importorskip("fastapi")  # the device image has no web stack; CI does
pytest.importorskip("hypothesis")

from fastapi.testclient import TestClient  # noqa: E402
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from floorline.machine.schema import KEYS  # noqa: E402
from floorline.web.app import create_app  # noqa: E402

client = TestClient(create_app(), raise_server_exceptions=False)


def test_designs_lists_shipped_with_sliders():
    r = client.get("/api/designs")
    assert r.status_code == 200
    ds = {d["name"]: d for d in r.json()["designs"]}
    assert {"mx8-355", "hgx-h200", "gb200-nvl72"} <= set(ds)
    assert ds["mx8-355"]["default"]
    keys = {s["key"] for s in ds["mx8-355"]["sliders"]}
    assert {"gpu.power", "cooling.tray_flow", "cooling.inlet_temp", "rack.trays", "nic.power", "host.cpu_power"} <= keys
    for s in ds["mx8-355"]["sliders"]:
        assert s["min"] <= s["value"] <= s["max"] and s["step"] > 0


def test_check_matches_cli_shape_and_numbers():
    r = client.post("/api/check", json={"design": "mx8-355"})
    assert r.status_code == 200
    rep = r.json()
    assert rep["summary"] == {"pass": 24, "conditional": 3, "fail": 0}
    assert set(rep["checks"][0]) == {"id", "group", "title", "value", "unit", "limit", "margin", "status", "reason"}
    r = client.post("/api/check", json={"design": "mx8-355", "set": {"gpu.power": 1700}})
    by = {c["id"]: c for c in r.json()["checks"]}
    assert by["power.device"]["status"] == "FAIL"


@pytest.mark.parametrize("body, needle", [
    ({"set": {"gpu.pwr": 1}}, "gpu.pwr"),
    ({"set": {"gpu.power": "abc"}}, "gpu.power: not a number"),
    ({"set": {"gpu.power": -1}}, "gpu.power: must be a number > 0"),
    ({"set": {"cooling.tray_flow": 0}}, "cooling.tray_flow: must be"),
    ({"set": {"gpu.power": "3 kg"}}, "gpu.power: unit"),
    ({"design": "nope"}, "design 'nope': unknown"),
    ({"design": "/etc/passwd"}, "unknown"),
    ({"design": "mx8-355", "extra": 1}, "extra: unknown field"),
    ({"set": [1, 2]}, "set: expected an object"),
])
def test_bad_input_is_422_one_line(body, needle):
    r = client.post("/api/check", json=body)
    assert r.status_code == 422
    detail = r.json()["detail"]
    assert needle in detail and "\n" not in detail


@pytest.mark.parametrize("raw", [b"not json", b"[1,2]", b'{"set": {"gpu.power": NaN}}', b'{"set": {"gpu.power": 1e400}}', b"\xff\xfe"])
def test_malformed_bodies_are_422(raw):
    r = client.post("/api/check", content=raw, headers={"content-type": "application/json"})
    assert r.status_code == 422


_values = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True), st.integers(min_value=-10**30, max_value=10**30),
    st.text(max_size=12), st.booleans(), st.none(), st.lists(st.integers(), max_size=2),
    st.sampled_from(["1.5 kW", "20 L/min", "3 kg", "1e999", "-0", "0x10", "nan", "  7  ", "5 CFM", "40 degC"]),
)
_keys = st.one_of(st.sampled_from(sorted(KEYS)), st.text(max_size=16))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(design=st.one_of(st.sampled_from(["mx8-355", "hgx-h200", "gb200-nvl72"]), st.text(max_size=10), st.integers()),
       sets=st.one_of(st.dictionaries(_keys, _values, max_size=4), _values))
def test_fuzz_never_500(design, sets):
    r = client.post("/api/check", content=json.dumps({"design": design, "set": sets}, allow_nan=True),
                    headers={"content-type": "application/json"})
    assert r.status_code in (200, 422), r.text
    if r.status_code == 422:
        assert "\n" not in r.json()["detail"]
    else:
        assert sum(r.json()["summary"].values()) == 27


def test_pages_served_offline():
    r = client.get("/")
    assert r.status_code == 200 and "api/check" not in r.text and "app.js" in r.text
    for path in ("/app.js", "/style.css"):
        assert client.get(path).status_code == 200
    html = client.get("/").text + client.get("/app.js").text + client.get("/style.css").text
    assert "http://" not in html and "https://" not in html  # nothing fetched from a CDN
    assert 'href="economics.html"' in client.get("/").text
