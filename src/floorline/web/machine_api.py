"""HTTP face of the machine calculator: GET /api/designs, POST /api/check.

Bad input answers 422 with the same one-line message the CLI prints; nothing a client sends may
produce a 500. The body is parsed by hand (not a pydantic model) so the message is ours, one line.
"""

from __future__ import annotations

import json
import math

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from floorline.errors import InputError
from floorline.jsonsafe import finite

router = APIRouter(prefix="/api", tags=["machine"])

# The sliders the page shows: key, label, and how far each may travel around the design's value
# (lo, hi as factors of it, or absolute where a factor means nothing, e.g. a temperature).
SLIDERS = (
    ("gpu.power", "GPU power (board, TBP)", ("x", 0.5, 1.6)),
    ("cooling.tray_flow", "Coolant flow per tray", ("x", 0.3, 2.5)),
    ("cooling.inlet_temp", "Coolant inlet temperature", ("abs", 10, 50)),
    ("rack.trays", "Trays per rack", ("count", 1, 2.0)),
    ("nic.power", "NIC power (each, with optics)", ("x", 0, 4)),
    ("host.cpu_power", "Host CPU power (each)", ("x", 0, 3)),
    ("gpu.peak_factor", "GPU transient peak / TBP", ("abs", 1, 1.5)),
    ("tray.fan_power", "Fan power per tray", ("x", 0, 3)),
    ("gpu.fabric_link_bandwidth", "Scale-up link bandwidth", ("x", 0.25, 2)),
    ("gpu.loop_fraction", "GPU heat into the loop", ("abs", 0, 1)),
)



def _bad(msg: str) -> JSONResponse:
    return JSONResponse({"detail": str(msg).splitlines()[0]}, status_code=422)


def _slider(design, key: str, label: str, rule) -> dict:
    from floorline.machine.schema import KEYS

    c, spec = design.constants[key], KEYS[key]
    kind, a, b = rule
    v = c.value
    if kind == "x":
        lo, hi = v * a, v * b
    elif kind == "count":
        lo, hi = a, max(v * b, v + 4)
    else:
        lo, hi = a, b
    lo = max(lo, spec.lo if not spec.lo_open else spec.lo + (1 if spec.integer else (hi - lo) / 200))
    hi = min(hi, spec.hi)
    step = 1 if spec.integer else _nice_step((hi - lo) / 200)
    return {"key": key, "label": label, "unit": c.unit, "value": v, "min": lo, "max": hi, "step": step,
            "confidence": c.confidence, "source": c.source}


def _nice_step(raw: float) -> float:
    """The largest 1-2-5 step not above raw, so slider values read as round numbers."""
    if raw <= 0:
        return 1.0
    exp = math.floor(math.log10(raw))
    for m in (5, 2, 1):
        if m * 10**exp <= raw:
            return float(m * 10**exp)
    return float(10**exp)


@router.get("/designs")
def designs() -> JSONResponse:
    from floorline.machine.design import DEFAULT_DESIGN, resolve, shipped

    out = []
    for name in shipped():
        d = resolve(name)
        out.append({
            "name": d.name, "title": d.title, "description": d.description, "medium": d.medium,
            "default": name == DEFAULT_DESIGN,
            "sliders": [_slider(d, k, label, rule) for k, label, rule in SLIDERS],
            "constants": {k: {"value": c.value, "unit": c.unit, "confidence": c.confidence, "source": c.source}
                          for k, c in d.constants.items()},
        })
    from floorline.machine.checks import CHECKS

    checks = [{"id": c.id, "group": c.group, "title": c.title, "formula": c.formula} for c in CHECKS]
    return JSONResponse(finite({"designs": out, "checks": checks}))


@router.post("/check")
async def check(request: Request) -> JSONResponse:
    from floorline.machine.checks import evaluate, public
    from floorline.machine.design import resolve, shipped, with_overrides

    try:
        body = json.loads(await request.body() or b"{}")
    except (ValueError, UnicodeDecodeError):
        return _bad("body: expected a JSON object like {\"design\": \"mx8-355\", \"set\": {\"gpu.power\": 1500}}")
    if not isinstance(body, dict):
        return _bad("body: expected a JSON object with keys design and set")
    extra = sorted(set(body) - {"design", "set"})
    if extra:
        return _bad(f"{extra[0]}: unknown field; allowed: design, set")
    name, sets = body.get("design", "mx8-355"), body.get("set") or {}
    # Only shipped names over HTTP: a path would let a client make the server read its files.
    if not isinstance(name, str) or name not in shipped():
        return _bad(f"design {str(name)[:40]!r}: unknown; allowed: one of {', '.join(shipped())}")
    if not isinstance(sets, dict):
        return _bad("set: expected an object of KEY: VALUE, e.g. {\"gpu.power\": 1500}")
    try:
        report = public(evaluate(with_overrides(resolve(name), sets)))
    except InputError as e:
        return _bad(str(e))
    return JSONResponse(finite(report))
