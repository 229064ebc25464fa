"""One pint registry for the machine model. Built lazily: pint takes ~0.3 s to load its definitions,
and `floorline --help` must stay fast."""

from __future__ import annotations

from functools import lru_cache


@lru_cache(maxsize=1)
def ureg():
    import pint

    reg = pint.UnitRegistry(autoconvert_offset_to_baseunit=True)
    # Rack units: EIA-310's 44.45 mm, what the seed and ORv3 gear quote heights in. Spelled RU because
    # pint already owns "U" (the unified atomic mass unit).
    reg.define("rack_unit = 44.45 * millimeter = RU")
    reg.define("CFM = foot ** 3 / minute")
    return reg


def Q(value, unit: str):
    """A quantity; "1" (or "") means dimensionless."""
    return ureg().Quantity(value, unit if unit not in ("", "1") else "dimensionless")
