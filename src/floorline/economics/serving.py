"""Serving price and energy from throughput: rack-hour -> $/GPU-hour -> $/M tokens, J/token.

rack-hour $ = capex / years / 8,760 + IT kW * PUE * $/kWh
              (or: hardware $/GPU-hour * GPUs per rack + IT kW * PUE * $/kWh)
$/GPU-hour  = rack-hour $ / GPUs per rack   (or given directly)
$/M tokens  = $/GPU-hour * 1e6 / (tokens/s/GPU * 3,600), for input (prefill) and output (decode)
J/token     = facility W per GPU / tokens/s/GPU;  kWh per M tokens = J/token * 1e6 / 3.6e6
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from floorline.economics.catalog import assumption, positive
from floorline.errors import InputError


@dataclass(frozen=True)
class ServingInputs:
    output_tokens_per_s: float  # per GPU
    input_tokens_per_s: float | None = None  # per GPU, prefill; optional
    input_per_output: float | None = None  # workload shape for the blended price
    rack_capex_usd: float = 3.9e6
    years: float = 3
    rack_kw: float = 132
    pue: float = 1.2
    usd_per_kwh: float = 0.10
    gpus_per_rack: float = 72
    usd_per_gpu_hour: float | None = None  # all-in price: overrides the rack-hour derivation
    hardware_usd_per_gpu_hour: float | None = None  # capex or rental share only; power is added on top

    @classmethod
    def seed_defaults(cls, **over) -> ServingInputs:
        base = {
            "rack_capex_usd": assumption("serving", "rack_capex_usd"),
            "years": assumption("serving", "years"),
            "rack_kw": assumption("serving", "rack_it_kw"),
            "pue": assumption("serving", "pue"),
            "usd_per_kwh": assumption("serving", "usd_per_kwh"),
            "gpus_per_rack": assumption("serving", "gpus_per_rack"),
        }
        base.update({k: v for k, v in over.items() if v is not None})
        return cls(**base)


def serving_cost(x: ServingInputs) -> dict:
    positive(x.output_tokens_per_s, "--tokens-per-s")
    if x.input_tokens_per_s is not None:
        positive(x.input_tokens_per_s, "--input-tokens-per-s")
    if x.input_per_output is not None:
        positive(x.input_per_output, "--input-per-output", allow_zero=True)
        if x.input_tokens_per_s is None:
            raise InputError("--input-per-output: needs --input-tokens-per-s (the prefill throughput that prices input)")
    positive(x.rack_capex_usd, "--rack-capex", allow_zero=True)
    positive(x.years, "--years")
    positive(x.rack_kw, "--rack-kw")
    positive(x.pue, "--pue")
    positive(x.usd_per_kwh, "--usd-per-kwh", allow_zero=True)
    positive(x.gpus_per_rack, "--gpus-per-rack")
    hours_per_year = assumption("serving", "hours_per_year")
    if x.hardware_usd_per_gpu_hour is not None:
        capex_per_hour = positive(x.hardware_usd_per_gpu_hour, "--hardware-usd-per-gpu-hour",
                                  allow_zero=True) * x.gpus_per_rack
    else:
        capex_per_hour = x.rack_capex_usd / x.years / hours_per_year
    power_per_hour = x.rack_kw * x.pue * x.usd_per_kwh
    rack_hour = capex_per_hour + power_per_hour
    if x.usd_per_gpu_hour is not None:
        gpu_hour = positive(x.usd_per_gpu_hour, "--usd-per-gpu-hour")
    else:
        gpu_hour = rack_hour / x.gpus_per_rack
    facility_w_per_gpu = x.rack_kw * 1e3 * x.pue / x.gpus_per_rack

    def per_m(tps: float) -> float:
        return gpu_hour * 1e6 / (tps * 3600)

    out = {
        "inputs": asdict(x),
        "rack_hour_usd": rack_hour,
        "rack_hour_capex_usd": capex_per_hour,
        "rack_hour_power_usd": power_per_hour,
        "usd_per_gpu_hour": gpu_hour,
        "usd_per_m_output_tokens": per_m(x.output_tokens_per_s),
        "usd_per_m_input_tokens": per_m(x.input_tokens_per_s) if x.input_tokens_per_s else None,
        "facility_w_per_gpu": facility_w_per_gpu,
        "j_per_output_token": facility_w_per_gpu / x.output_tokens_per_s,
        "kwh_per_m_output_tokens": facility_w_per_gpu / x.output_tokens_per_s * 1e6 / 3.6e6,
        "j_per_input_token": facility_w_per_gpu / x.input_tokens_per_s if x.input_tokens_per_s else None,
        "racks_per_b_tokens_per_hour": 1e9 / 3600 / x.output_tokens_per_s / x.gpus_per_rack,
    }
    if x.input_tokens_per_s and x.input_per_output is not None:
        # a request of 1 output token carries input_per_output prompt tokens
        out["usd_per_m_output_tokens_with_input"] = (
            out["usd_per_m_output_tokens"] + x.input_per_output * out["usd_per_m_input_tokens"])
    return out


def throughput_from_packet(path: Path) -> dict:
    """Output tokens/s per GPU from a `bench decode` packet: batch * 1000 / (ms/token) / tp."""
    from floorline.evidence.store import load_packet

    packet = load_packet(Path(path))
    if packet.kind != "bench.decode":
        raise InputError(f"--evidence {path}: kind is {packet.kind!r}, expected 'bench.decode'")
    if packet.status != "passed":
        raise InputError(f"--evidence {path}: status is {packet.status!r}; only a passed run prices anything")
    if packet.timing is None:
        raise InputError(f"--evidence {path}: field timing: missing (need the median ms/token)")
    unit = packet.timing.unit.replace(" ", "").lower()
    scale = {"ms/token": 1.0, "ms": 1.0, "us/token": 1e-3, "us": 1e-3, "s/token": 1e3, "s": 1e3}.get(unit)
    if scale is None:
        raise InputError(f"--evidence {path}: field timing.unit: {packet.timing.unit!r}, expected ms/token")
    ms = packet.timing.median * scale
    if not ms > 0:
        raise InputError(f"--evidence {path}: field timing.median: must be > 0, got {packet.timing.median!r}")
    batch = packet.params.get("batch", 1)
    tp = packet.params.get("tp", 1) or 1
    if not isinstance(batch, int | float) or batch <= 0:
        raise InputError(f"--evidence {path}: field params.batch: must be > 0, got {batch!r}")
    if not isinstance(tp, int | float) or tp <= 0:
        raise InputError(f"--evidence {path}: field params.tp: must be > 0, got {tp!r}")
    gpus = packet.hardware.gpus[0].name if packet.hardware.gpus else None
    return {
        "tokens_per_s_per_gpu": batch * 1000.0 / ms / tp,
        "ms_per_token": ms,
        "batch": batch,
        "tp": tp,
        "packet_id": packet.id,
        "packet_path": str(path),
        "device": gpus,
        "params": packet.params,
    }
