"""One replay from user-level settings: trace + model + GPU -> time model, cache size, config, result.

The CLI, the report section and tests all come through here, so the derived numbers (cache capacity
from HBM, price and power from the catalog, calibration from a packet) are made in one place.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from floorline.economics.catalog import DTYPE_BYTES, device
from floorline.errors import InputError
from floorline.replay.model import model_shape
from floorline.replay.sim import ReplayConfig, replay
from floorline.replay.timemodel import TimeModel
from floorline.replay.trace import Request, load_trace


@dataclass(frozen=True)
class ReplaySettings:
    model: str = "llama-3.1-8b"
    gpu: str = "h100"
    gpus_per_instance: int = 1
    instances: int = 1
    routing: str = "cache-aware"
    cache_blocks: int | None = None  # None: derive from HBM; 0: unbounded
    block_size: int = 512
    weight_dtype: str = "bf16"
    kv_dtype: str = "bf16"
    mem_fraction: float = 0.9  # vLLM's default gpu_memory_utilization
    max_batch: int = 256
    usd_per_gpu_hour: float | None = None
    power_w: float | None = None
    pue: float = 1.2
    success_rate: float = 1.0
    compute_efficiency: float = 1.0
    bandwidth_efficiency: float = 1.0
    calibrate: str | None = None  # a bench.decode packet


# block-size is not here: a trace's blocks are fixed when it is read, so both sides would need two loads
COMPARABLE = {"routing": str, "cache-blocks": int, "instances": int, "gpu": str,
              "model": str, "kv-dtype": str, "weight-dtype": str, "gpus-per-instance": int, "max-batch": int}


def parse_compare(text: str, base: ReplaySettings) -> ReplaySettings:
    if "=" not in text:
        raise InputError(f"--compare: expected KEY=VALUE with KEY one of {', '.join(COMPARABLE)}, got {text!r}")
    key, value = (s.strip() for s in text.split("=", 1))
    if key == "block-size":
        raise InputError(f"--compare block-size: the trace's blocks are fixed when it is read; compare one of "
                         f"{', '.join(COMPARABLE)}")
    if key not in COMPARABLE:
        raise InputError(f"--compare: KEY must be one of {', '.join(COMPARABLE)}, got {key!r}")
    try:
        v = COMPARABLE[key](value)
    except ValueError:
        raise InputError(f"--compare {key}: expected an integer, got {value!r}") from None
    return replace(base, **{key.replace("-", "_"): v})


def calibration(path: str) -> dict:
    from floorline.evidence.store import load_packet

    pk = load_packet(Path(path))
    if pk.kind != "bench.decode":
        raise InputError(f"--calibrate {path}: kind is {pk.kind!r}, expected 'bench.decode'")
    if pk.floor is None or pk.floor.fraction is None or not 0 < pk.floor.fraction <= 1.5:
        raise InputError(f"--calibrate {path}: field floor.fraction: missing or out of range")
    return {"packet": str(path), "packet_id": pk.id, "bandwidth_efficiency": min(1.0, float(pk.floor.fraction)),
            "params": pk.params}


def prepare(s: ReplaySettings) -> tuple[ReplayConfig, TimeModel, dict]:
    """Settings -> (config, time model, provenance of every derived number)."""
    m = model_shape(s.model)
    dev = device(s.gpu)
    if s.gpus_per_instance < 1:
        raise InputError(f"--gpus-per-instance: must be >= 1, got {s.gpus_per_instance}")
    if not 0 < s.mem_fraction <= 1:
        raise InputError(f"--mem-fraction: must be > 0 and <= 1, got {s.mem_fraction}")
    if s.cache_blocks is not None and s.cache_blocks < 0:
        raise InputError(f"--cache-blocks: must be >= 0 (0 = unbounded), got {s.cache_blocks}")
    if s.block_size < 1:
        raise InputError(f"--block-size: must be > 0, got {s.block_size}")
    cal = calibration(s.calibrate) if s.calibrate else None
    bw_eff = cal["bandwidth_efficiency"] if cal else s.bandwidth_efficiency
    tm = TimeModel.build(m, dev, s.gpus_per_instance, s.weight_dtype, s.kv_dtype,
                         s.compute_efficiency, bw_eff)
    block_bytes = s.block_size * tm.kv_bytes_per_token
    hbm = dev.si("hbm_capacity") * s.gpus_per_instance
    if s.cache_blocks is None:
        free = hbm * s.mem_fraction - tm.weight_bytes
        blocks = math.floor(free / block_bytes)
        if blocks < 1:
            raise InputError(f"--model {s.model}: {tm.weight_bytes / 1e9:.1f} GB of {s.weight_dtype} weights leave no "
                             f"room for one {block_bytes / 1e6:.0f} MB KV block in {s.gpus_per_instance} x "
                             f"{dev.key} at --mem-fraction {s.mem_fraction}; add --gpus-per-instance")
        cache, cache_src = blocks, (f"({s.gpus_per_instance} x {dev.si('hbm_capacity') / 1e9:g} GB x {s.mem_fraction:g}"
                                    f" - {tm.weight_bytes / 1e9:.2f} GB weights) / {block_bytes / 1e6:.2f} MB per block")
    else:
        cache = s.cache_blocks or None
        cache_src = "unbounded (--cache-blocks 0)" if cache is None else "--cache-blocks"
    # Running sequences' KV lives in the same HBM left over after the weights (the prefix cache is
    # modelled as a separate pool of --cache-blocks; docs/replay.md says why that is a simplification).
    kv_budget = math.floor((hbm * s.mem_fraction - tm.weight_bytes) / tm.kv_bytes_per_token)
    if kv_budget < 1:
        raise InputError(f"--model {s.model}: {tm.weight_bytes / 1e9:.1f} GB of {s.weight_dtype} weights leave no "
                         f"HBM for KV in {s.gpus_per_instance} x {dev.key} at --mem-fraction {s.mem_fraction}; "
                         "add --gpus-per-instance")
    price = s.usd_per_gpu_hour if s.usd_per_gpu_hour is not None else dev.si("usd_per_gpu_hour")
    power = s.power_w if s.power_w is not None else dev.si("power")
    cfg = ReplayConfig(instances=s.instances, routing=s.routing, cache_blocks=cache, block_size=s.block_size,
                       max_batch=s.max_batch, gpus_per_instance=s.gpus_per_instance, usd_per_gpu_hour=price,
                       power_w=power, pue=s.pue, success_rate=s.success_rate,
                       kv_budget_tokens=kv_budget)
    cfg.check()
    prov = {
        "settings": asdict(s),
        "model_source": m.source,
        "gpu": dev.name,
        "hbm_bw_source": dev.get("hbm_bw").source,
        "cache_blocks_per_instance": cache,
        "cache_blocks_source": cache_src,
        "kv_block_bytes": block_bytes,
        "kv_budget_tokens_per_instance": kv_budget,
        "weight_bytes": tm.weight_bytes,
        "usd_per_gpu_hour_source": "--usd-per-gpu-hour" if s.usd_per_gpu_hour is not None
        else dev.get("usd_per_gpu_hour").source,
        "power_source": "--power-w" if s.power_w is not None else dev.get("power").source,
        "time_model": "roofline floor" if (bw_eff == 1 and s.compute_efficiency == 1) else
        f"roofline x efficiency (compute {s.compute_efficiency:g}, bandwidth {bw_eff:g})",
        "calibration": cal,
        "dtype_bytes": {"weights": DTYPE_BYTES[s.weight_dtype], "kv": DTYPE_BYTES[s.kv_dtype]},
    }
    return cfg, tm, prov


def run(reqs: list[Request], s: ReplaySettings, progress=None) -> dict:
    cfg, tm, prov = prepare(s)
    result = replay(reqs, cfg, tm, progress)
    result["provenance"] = prov
    return result


def load(path: Path, block_size: int, limit: int | None = None) -> list[Request]:
    return load_trace(path, block_size, limit)
