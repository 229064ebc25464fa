"""Designs are data: a TOML file where every constant has value, unit, source and confidence.

This module is the one place where TOML text and user overrides (`--set`, the web API) become typed
constants. Everything it lets through is finite, in range and of the right dimension; everything else
is an InputError naming the key and the allowed range.
"""

from __future__ import annotations

import difflib
import math
import tomllib
from dataclasses import dataclass, replace
from pathlib import Path

from floorline.errors import InputError
from floorline.machine.schema import CONFIDENCE, KEYS, Spec

DESIGN_DIR = Path(__file__).parent / "designs"
DEFAULT_DESIGN = "mx8-355"
MEDIA = ("liquid", "air")


@dataclass(frozen=True)
class Constant:
    key: str
    value: float
    unit: str
    source: str
    confidence: str
    overridden: bool = False

    def quantity(self):
        from floorline.machine.units import Q

        return Q(self.value, self.unit)


@dataclass(frozen=True)
class Design:
    name: str
    title: str
    description: str
    medium: str  # "liquid" (cold plates + CDU) or "air" (heatsinks + room air)
    constants: dict[str, Constant]
    path: str

    def get(self, key: str) -> Constant:
        return self.constants[key]


def shipped() -> list[str]:
    return sorted(p.stem for p in DESIGN_DIR.glob("*.toml"))


def resolve(name_or_path: str | None) -> Design:
    """A shipped design by name, or a user's TOML file by path."""
    name = name_or_path or DEFAULT_DESIGN
    path = DESIGN_DIR / f"{name}.toml"
    if "/" not in name and path.exists():
        return load(path)
    p = Path(name)
    if p.suffix == ".toml" or p.exists():
        return load(p)
    raise InputError(f"design {name!r}: unknown; allowed: one of {', '.join(shipped())} or a path to a .toml file")


def load(path: Path) -> Design:
    try:
        data = tomllib.loads(Path(path).read_text())
    except FileNotFoundError:
        raise InputError(f"design {path}: no such file") from None
    except (IsADirectoryError, UnicodeDecodeError):
        raise InputError(f"design {path}: not a TOML text file") from None
    except tomllib.TOMLDecodeError as e:
        raise InputError(f"design {path}: malformed TOML: {e}") from None
    return parse(data, str(path))


def parse(data: dict, where: str) -> Design:
    meta = data.get("design")
    if not isinstance(meta, dict) or not isinstance(meta.get("name"), str):
        raise InputError(f"{where}: [design] table with name = \"...\" is required")
    medium = meta.get("medium", "liquid")
    if medium not in MEDIA:
        raise InputError(f"{where}: design.medium: must be one of {', '.join(MEDIA)}, got {medium!r}")
    consts: dict[str, Constant] = {}
    for group, table in data.items():
        if group == "design":
            continue
        if not isinstance(table, dict):
            raise InputError(f"{where}: {group}: expected a table of constants")
        for name, entry in table.items():
            key = f"{group}.{name}"
            consts[key] = _constant(key, entry, where)
    missing = [k for k in KEYS if k not in consts]
    if missing:
        k = missing[0]
        raise InputError(f"{where}: missing key {k} ({KEYS[k].label}; {KEYS[k].allowed()})"
                         + (f" and {len(missing) - 1} more" if len(missing) > 1 else ""))
    return Design(meta["name"], str(meta.get("title", meta["name"])), str(meta.get("description", "")),
                  medium, consts, where)


def _constant(key: str, entry, where: str) -> Constant:
    spec = _spec(key)
    if not isinstance(entry, dict):
        raise InputError(f"{where}: {key}: expected a table with value, unit, source, confidence")
    unit, source, conf = entry.get("unit"), entry.get("source"), entry.get("confidence")
    if not isinstance(unit, str):
        raise InputError(f"{where}: {key}: unit is required (a unit of {spec.unit})")
    if not isinstance(source, str) or not source.strip():
        raise InputError(f"{where}: {key}: source is required (a URL or document, or 'assumption: why')")
    if conf not in CONFIDENCE:
        raise InputError(f"{where}: {key}: confidence must be one of {'|'.join(CONFIDENCE)}, got {conf!r}")
    value = entry.get("value")
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InputError(f"{where}: {key}: value must be {spec.allowed()}, got {value!r}")
    _check_range(key, spec, float(value), unit)
    return Constant(key, float(value), unit, source.strip(), conf)


def _spec(key: str) -> Spec:
    spec = KEYS.get(key)
    if spec is None:
        near = difflib.get_close_matches(key, KEYS, n=1)
        hint = f" (did you mean {near[0]}?)" if near else ""
        raise InputError(f"unknown key {key!r}{hint}; allowed: the design keys listed by `floorline machine keys`")
    return spec


def _check_range(key: str, spec: Spec, value: float, unit: str, given: str | None = None) -> None:
    """Convert to the canonical unit (refusing a wrong dimension) and check the allowed range.
    given: the user's own text, which the error quotes (pint spells units out in full)."""
    from floorline.machine.units import Q

    if not math.isfinite(value):
        raise InputError(f"{key}: must be {spec.allowed()}, got {value}")
    try:
        canon = Q(value, unit).to(spec.unit if spec.unit != "1" else "dimensionless").magnitude
    except Exception:
        raise InputError(f"{key}: unit {unit!r} is not a unit of {spec.unit}; allowed: {spec.allowed()}") from None
    if not spec.ok(float(canon)):
        shown = given or (f"{value:g} {unit}" if unit not in ("", "1") else f"{value:g}")
        raise InputError(f"{key}: must be {spec.allowed()}, got {shown}")


def parse_value(key: str, raw, unit: str) -> float:
    """A user's value for key in the design's unit: a number (taken in that unit) or 'number unit'."""
    from floorline.machine.units import Q, ureg

    spec = _spec(key)
    if isinstance(raw, bool) or not isinstance(raw, int | float | str):
        raise InputError(f"{key}: not a number: {raw!r}; allowed: {spec.allowed()}")
    text = str(raw).strip()
    try:
        value = float(raw) if not isinstance(raw, str) else float(text)
    except (ValueError, OverflowError):
        value = None
    if value is not None:  # a bare number is in the design's unit for this key
        _check_range(key, spec, value, unit)
        return value
    try:
        q = ureg().Quantity(text)
        mag, given = float(q.magnitude), str(q.units)
    except Exception:
        raise InputError(f"{key}: not a number: {text[:40]!r}; allowed: {spec.allowed()}") from None
    _check_range(key, spec, mag, given, text)
    return float(Q(mag, given).to(unit if unit not in ("", "1") else "dimensionless").magnitude)


def with_overrides(design: Design, sets: dict) -> Design:
    """A copy of design with some constants replaced. An override keeps the constant's confidence:
    a what-if value is a hypothesis, not a measurement."""
    if not sets:
        return design
    consts = dict(design.constants)
    for key, raw in sets.items():
        _spec(str(key))
        old = consts[key]
        value = parse_value(key, raw, old.unit)
        consts[key] = replace(old, value=value, overridden=True,
                              source=f"set by user to {value:g} {old.unit} (design: {old.value:g}; {old.source})")
    return replace(design, constants=consts)


def parse_sets(items: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        key, sep, val = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise InputError(f"--set {item!r}: expected KEY=VALUE, e.g. gpu.power=1500 or gpu.power='1.5 kW'")
        out[key] = val
    return out
