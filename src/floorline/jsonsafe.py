"""Strict JSON has no NaN or infinity: packets, API answers and --json output carry null instead."""

from __future__ import annotations

import math
from typing import Any


def finite(obj: Any) -> Any:
    """A copy of obj with every non-finite float replaced by None (readers take null as 'unbounded')."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {str(k): finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [finite(v) for v in obj]
    return obj
