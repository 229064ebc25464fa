"""One check, taken apart: its formula, the derived values it rests on, and every input's source."""

from __future__ import annotations

from floorline.errors import InputError
from floorline.machine.checks import CHECKS, evaluate
from floorline.machine.design import Design
from floorline.machine.model import DERIVED, Ctx


def explain(design: Design, check_id: str) -> dict:
    ids = [c.id for c in CHECKS]
    if check_id not in ids:
        raise InputError(f"check {check_id!r}: unknown; allowed: one of {', '.join(ids)}")
    cd = next(c for c in CHECKS if c.id == check_id)
    row = evaluate(design, only=check_id)["checks"][0]
    ctx = Ctx(design)
    derived = []
    for name in row["_derived"]:
        d = DERIVED[name]
        q = ctx.d(name)
        derived.append({"name": name, "formula": d.formula, "unit": d.unit,
                        "value": float(q.to(d.unit if d.unit != "1" else "dimensionless").magnitude)
                        if hasattr(q, "to") else float(q)})
    inputs = []
    for key in row["_inputs"]:
        c = design.constants[key]
        inputs.append({"key": key, "value": c.value, "unit": c.unit, "confidence": c.confidence, "source": c.source})
    out = {k: v for k, v in row.items() if not k.startswith("_")}
    return {"design": design.name, "check": out, "formula": cd.formula, "derived": derived, "inputs": inputs}

