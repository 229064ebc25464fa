"""The hardware catalog (hardware.toml) and the assumptions file, read into frozen dataclasses.

This is the one place the TOML is translated; everything else asks for SI values (FLOP/s, bytes,
bytes/s, W, USD/GPU-hour) through Device.si(field) and never sees a unit string.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from floorline.errors import InputError

HERE = Path(__file__).parent
CONFIDENCE = ("vendor", "derived", "estimate", "measured", "unspecified")

# unit string -> factor to SI. Anything else in the TOML is a catalog bug, caught at load.
UNIT_SI: dict[str, float] = {
    "TFLOPS": 1e12, "PFLOPS": 1e15,
    "GB": 1e9, "TB": 1e12,
    "TB/s": 1e12, "GB/s": 1e9,
    "W": 1.0, "kW": 1e3,
    "USD/GPU-hour": 1.0, "count": 1.0,
}
DTYPE_FIELD = {"bf16": "bf16_dense", "fp16": "bf16_dense", "fp8": "fp8_dense", "fp4": "fp4_dense"}
# Bytes per parameter for reading weights once (fp16 and bf16 are both 2 bytes).
DTYPE_BYTES = {"fp32": 4.0, "bf16": 2.0, "fp16": 2.0, "fp8": 1.0, "int8": 1.0, "fp4": 0.5, "int4": 0.5}


@dataclass(frozen=True)
class Quantity:
    value: float
    unit: str
    source: str
    confidence: str

    @property
    def si(self) -> float:
        return self.value * UNIT_SI[self.unit]


@dataclass(frozen=True)
class Device:
    key: str
    name: str
    vendor: str
    fields: tuple[tuple[str, Quantity], ...]

    def get(self, field: str) -> Quantity | None:
        return dict(self.fields).get(field)

    def si(self, field: str) -> float:
        q = self.get(field)
        if q is None:
            raise InputError(f"--gpu {self.key}: the catalog has no {field} for {self.name}"
                             f" (has: {', '.join(k for k, _ in self.fields)})")
        return q.si

    def peak_flops(self, dtype: str) -> float:
        """Dense tensor peak in FLOP/s for a precision name (bf16|fp16|fp8|fp4)."""
        dtype = dtype.lower()
        if dtype not in DTYPE_FIELD:
            raise InputError(f"--precision: must be one of {', '.join(DTYPE_FIELD)}, got {dtype!r}")
        field = DTYPE_FIELD[dtype]
        if self.get(field) is None:
            raise InputError(f"--precision {dtype}: {self.name} has no dense {dtype} tensor peak in the catalog")
        return self.si(field)


def _quantity(where: str, raw: Any) -> Quantity:
    if not isinstance(raw, dict) or set(raw) != {"value", "unit", "source", "confidence"}:
        raise ValueError(f"{where}: expected {{value, unit, source, confidence}}, got {raw!r}")
    value = raw["value"]
    if not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{where}: value must be a positive number, got {value!r}")
    if raw["unit"] not in UNIT_SI and where.startswith("devices"):
        raise ValueError(f"{where}: unit {raw['unit']!r} not in {sorted(UNIT_SI)}")
    if raw["confidence"] not in CONFIDENCE:
        raise ValueError(f"{where}: confidence must be one of {CONFIDENCE}")
    if not str(raw["source"]).strip():
        raise ValueError(f"{where}: empty source")
    return Quantity(float(value), raw["unit"], str(raw["source"]), raw["confidence"])


@lru_cache(maxsize=1)
def devices() -> dict[str, Device]:
    data = tomllib.loads((HERE / "hardware.toml").read_text())
    out = {}
    for key, body in data["devices"].items():
        fields = tuple((f, _quantity(f"devices.{key}.{f}", v)) for f, v in body.items()
                       if f not in ("name", "vendor"))
        out[key] = Device(key, body["name"], body["vendor"], fields)
    return out


def device(name: str, field: str = "--gpu") -> Device:
    """The catalog entry for `name`; field: how the caller's CLI names the input, for the error."""
    key = name.strip().lower().replace("_", "-").replace(" ", "-")
    devs = devices()
    if key not in devs:
        raise InputError(f"{field}: unknown device {name!r}; allowed: {', '.join(devs)}")
    return devs[key]


@lru_cache(maxsize=1)
def assumptions() -> dict[str, dict[str, Quantity]]:
    data = tomllib.loads((HERE / "assumptions.toml").read_text())
    out: dict[str, dict[str, Quantity]] = {}

    def walk(prefix: str, body: dict) -> None:
        if body and all(isinstance(v, dict) and "value" in v for v in body.values()):
            out[prefix] = {k: _quantity(f"{prefix}.{k}", v) for k, v in body.items()}
            return
        for k, v in body.items():
            walk(f"{prefix}.{k}" if prefix else k, v)

    walk("", data)
    return out


def assumption(group: str, name: str) -> float:
    return assumptions()[group][name].value


def api_prices() -> list[str]:
    return [g.split(".", 1)[1] for g in assumptions() if g.startswith("synthetic.")]


def parse_count(text: str | float | int, field: str, *, allow_zero: bool = False) -> float:
    """'2T' -> 2e12. Accepts K/M/B/T suffixes and plain or scientific numbers; must be > 0 (or >= 0)."""
    if isinstance(text, int | float):
        value = float(text)
    else:
        s = str(text).strip().replace(",", "").replace("_", "")
        mult = {"K": 1e3, "M": 1e6, "B": 1e9, "G": 1e9, "T": 1e12, "P": 1e15}.get(s[-1:].upper())
        try:
            value = float(s[:-1]) * mult if mult else float(s)
        except ValueError:
            raise InputError(f"{field}: expected a number with an optional K/M/B/T suffix, got {text!r}") from None
    if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        raise InputError(f"{field}: must be {'>= 0' if allow_zero else '> 0'}, got {text!r}")
    return value


def positive(value: float, field: str, *, allow_zero: bool = False, maximum: float | None = None) -> float:
    """Bad numbers end as one line naming the field and the allowed range."""
    ok = value is not None and math.isfinite(value) and (value >= 0 if allow_zero else value > 0)
    if ok and maximum is not None:
        ok = value <= maximum
    if not ok:
        rng = (">= 0" if allow_zero else "> 0") + (f" and <= {maximum:g}" if maximum is not None else "")
        raise InputError(f"{field}: must be {rng}, got {value!r}")
    return float(value)


def weight_read_time_s(params: float, dtype: str, dev: Device) -> float:
    """Time to stream the weights once from HBM at the datasheet bandwidth: params x bytes / BW."""
    dtype = dtype.lower()
    if dtype not in DTYPE_BYTES:
        raise InputError(f"--dtype: must be one of {', '.join(DTYPE_BYTES)}, got {dtype!r}")
    return params * DTYPE_BYTES[dtype] / dev.si("hbm_bw")
