"""Training compute and cost (seed 003's calculation chain) and the synthetic-data top-up.

C = 6 * N_active * D, D = tokens_per_param * N_total; GPU-seconds = C / (peak * MFU);
GPUs = GPU-hours / (days * 24); racks = GPUs / GPUs per rack; cost = GPU-hours * $/GPU-hour.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from floorline.economics.catalog import assumption, assumptions, device, positive


@dataclass(frozen=True)
class TrainingInputs:
    total_params: float
    gpu: str = "b200"
    precision: str = "bf16"
    active_ratio: float = 0.05
    tokens_per_param: float = 40
    mfu: float = 0.20
    days: float = 90
    usd_per_gpu_hour: float | None = None  # None: the catalog default for the GPU
    gpus_per_rack: int = 72
    available_tokens: float = 100e12
    api: str = "sonnet-4.6"
    synthetic_usd_per_m: float | None = None  # self-hosted generation price, optional

    @classmethod
    def seed_defaults(cls, total_params: float, **over) -> TrainingInputs:
        base = {k: assumption("training", k) for k in
                ("active_ratio", "tokens_per_param", "mfu", "days", "available_tokens")}
        base["gpus_per_rack"] = int(assumption("training", "gpus_per_rack"))
        base.update({k: v for k, v in over.items() if v is not None})
        return cls(total_params=total_params, **base)


def synthetic_cost(tokens: float, api: str, self_hosted_usd_per_m: float | None = None) -> dict[str, float]:
    """Generated tokens priced at an API (input = ratio x output tokens), standard and batch."""
    group = f"synthetic.{api}"
    prices = assumptions().get(group)
    if prices is None:
        allowed = ", ".join(g.split(".", 1)[1] for g in assumptions() if g.startswith("synthetic."))
        from floorline.errors import InputError

        raise InputError(f"--api: unknown price table {api!r}; allowed: {allowed}")
    inp = prices["input_usd_per_m"].value
    out = prices["output_usd_per_m"].value
    ratio = prices["input_per_output"].value
    standard = tokens * ratio / 1e6 * inp + tokens / 1e6 * out
    result = {"standard": standard, "batch": standard * prices["batch_discount"].value}
    if self_hosted_usd_per_m is not None:
        result["self_hosted"] = tokens / 1e6 * self_hosted_usd_per_m
    return result


def training_cost(x: TrainingInputs) -> dict:
    positive(x.total_params, "--total-params")
    positive(x.active_ratio, "--active-ratio", maximum=1.0)
    positive(x.tokens_per_param, "--tokens-per-param")
    positive(x.mfu, "--mfu", maximum=1.0)
    positive(x.days, "--days")
    positive(x.gpus_per_rack, "--gpus-per-rack")
    positive(x.available_tokens, "--available-tokens", allow_zero=True)
    dev = device(x.gpu)
    price = x.usd_per_gpu_hour if x.usd_per_gpu_hour is not None else dev.si("usd_per_gpu_hour")
    positive(price, "--usd-per-gpu-hour")
    if x.synthetic_usd_per_m is not None:
        positive(x.synthetic_usd_per_m, "--synthetic-usd-per-m")
    peak = dev.peak_flops(x.precision)

    active = x.total_params * x.active_ratio
    tokens = x.tokens_per_param * x.total_params
    flops = assumption("training", "flops_per_param_token") * active * tokens
    gpu_seconds = flops / (peak * x.mfu)
    gpu_hours = gpu_seconds / 3600
    gpus = gpu_hours / (x.days * 24)
    racks = gpus / x.gpus_per_rack
    synthetic = max(0.0, tokens - x.available_tokens)
    return {
        "inputs": asdict(x) | {"usd_per_gpu_hour": price, "peak_flops": peak, "gpu_name": dev.name},
        "active_params": active,
        "compute_flops": flops,
        "tokens": tokens,
        "gpu_hours": gpu_hours,
        "gpus": gpus,
        "racks": racks,
        "cost_usd": gpu_hours * price,
        "synthetic_tokens": synthetic,
        "synthetic_cost_usd": synthetic_cost(synthetic, x.api, x.synthetic_usd_per_m),
    }
