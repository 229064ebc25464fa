"""Before/after throughput -> GPU-equivalents, racks, facility kW, kWh/day, $/day (seed 002's block)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from floorline.economics.catalog import assumption, positive


@dataclass(frozen=True)
class CapacityInputs:
    before: float
    after: float
    tokens_per_hour: float = 1e9
    gpus_per_rack: float = 72
    rack_kw: float = 132
    pue: float = 1.2
    usd_per_kwh: float = 0.10

    @classmethod
    def seed_defaults(cls, **over) -> CapacityInputs:
        base = {
            "before": assumption("capacity", "before_tokens_per_gpu_s"),
            "after": assumption("capacity", "after_tokens_per_gpu_s"),
            "tokens_per_hour": assumption("capacity", "target_tokens_per_hour"),
            "gpus_per_rack": assumption("capacity", "gpus_per_rack"),
            "rack_kw": assumption("capacity", "rack_it_kw"),
            "pue": assumption("capacity", "pue"),
            "usd_per_kwh": assumption("capacity", "usd_per_kwh"),
        }
        base.update({k: v for k, v in over.items() if v is not None})
        return cls(**base)


def capacity(x: CapacityInputs) -> dict:
    positive(x.before, "--before")
    positive(x.after, "--after")
    positive(x.tokens_per_hour, "--tokens-per-hour")
    positive(x.gpus_per_rack, "--gpus-per-rack")
    positive(x.rack_kw, "--rack-kw")
    positive(x.pue, "--pue")
    positive(x.usd_per_kwh, "--usd-per-kwh", allow_zero=True)
    tokens_per_s = x.tokens_per_hour / 3600
    before_gpu = tokens_per_s / x.before
    after_gpu = tokens_per_s / x.after
    freed = before_gpu - after_gpu
    racks = freed / x.gpus_per_rack
    kw = racks * x.rack_kw * x.pue  # facility power envelope of the freed racks
    kwh_day = kw * 24
    return {
        "inputs": asdict(x),
        "capacity_ratio": x.after / x.before,
        "before_gpu_equiv": before_gpu,
        "after_gpu_equiv": after_gpu,
        "freed_gpu_equiv": freed,
        "freed_racks": racks,
        "facility_kw_freed": kw,
        "kwh_per_day": kwh_day,
        "usd_per_day": kwh_day * x.usd_per_kwh,
    }
