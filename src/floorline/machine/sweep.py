"""Sweep one constant and watch every margin move ("change the one you doubt and see what moves")."""

from __future__ import annotations

from floorline.errors import InputError
from floorline.machine.checks import evaluate
from floorline.machine.design import Design, parse_value, with_overrides


def _statuses(design: Design, key: str, value: float) -> dict:
    return evaluate(with_overrides(design, {key: value}))


def sweep(design: Design, key: str, start, stop, steps: int = 11) -> dict:
    if key not in design.constants:
        with_overrides(design, {key: start})  # raises the one-line unknown-key error
    if not 2 <= steps <= 1000:
        raise InputError(f"--steps: must be an integer >= 2 and <= 1000, got {steps}")
    unit = design.constants[key].unit
    lo, hi = parse_value(key, start, unit), parse_value(key, stop, unit)
    integer = key_is_integer(key)
    values = [lo + (hi - lo) * i / (steps - 1) for i in range(steps)]
    if integer:
        values = sorted({round(v) for v in values}, reverse=hi < lo)
    margins: dict[str, list] = {}
    statuses: dict[str, list] = {}
    first = None
    prev_ok = None
    for i, v in enumerate(values):
        rep = _statuses(design, key, v)
        failing = {c["id"] for c in rep["checks"] if c["status"] == "FAIL"}
        for c in rep["checks"]:
            margins.setdefault(c["id"], []).append(c["margin"])
            statuses.setdefault(c["id"], []).append(c["status"])
        if first is None and failing:
            new = sorted(failing - (prev_ok or set())) or sorted(failing)
            if i == 0 or integer:
                first = {"check": new[0], "value": v, "unit": unit, "already_failing": i == 0, "also": new[1:]}
            else:  # several may break within one step: bisect each, the nearest crossing is the first
                at = {cid: _bisect(design, key, values[i - 1], v, cid) for cid in new}
                order = sorted(new, key=lambda cid: abs(at[cid] - values[i - 1]))
                first = {"check": order[0], "value": at[order[0]], "unit": unit, "already_failing": False,
                         "also": order[1:]}
        prev_ok = failing
    return {"design": design.name, "key": key, "unit": unit, "values": values,
            "margins": margins, "statuses": statuses, "first_fail": first}


def _bisect(design: Design, key: str, ok: float, bad: float, cid: str, iters: int = 30) -> float:
    """The value where check cid turns FAIL, between a passing and a failing step."""
    for _ in range(iters):
        mid = (ok + bad) / 2
        row = next(c for c in _statuses(design, key, mid)["checks"] if c["id"] == cid)
        if row["status"] == "FAIL":
            bad = mid
        else:
            ok = mid
    return bad


def key_is_integer(key: str) -> bool:
    from floorline.machine.schema import KEYS

    return KEYS[key].integer
