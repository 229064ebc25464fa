"""HTTP face of the economics tools, under /api/economics/.

GET  /api/economics/defaults   catalog devices, serving assumptions, measured bench.decode throughputs
GET  /api/economics/hw/{key}   one catalog device with sources
POST /api/economics/serving    {tokens_per_s, hardware_usd_per_gpu_hour | rack_capex_usd+years, pue,
                                usd_per_kwh, rack_kw, gpus_per_rack, tokens_per_hour, input_tokens_per_s?}
POST /api/economics/capacity   {before, after, tokens_per_hour, gpus_per_rack, rack_kw, pue, usd_per_kwh}
POST /api/economics/training   {total_params, gpu, precision, active_ratio, ...}

Bad input answers 422 with a one-line message naming the field (the same words the CLI prints).
Bodies are parsed by hand so that any JSON a client sends ends as 200 or 422, never 500.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from floorline.errors import InputError
from floorline.jsonsafe import finite

router = APIRouter(prefix="/api/economics", tags=["economics"])



def _api_names(msg: str) -> str:
    """The core raises with CLI flag names (--usd-per-kwh); this API's fields are usd_per_kwh."""
    return re.sub(r"--([a-z][a-z0-9-]*)", lambda m: m.group(1).replace("-", "_"), msg)


def _bad(msg: str) -> JSONResponse:
    return JSONResponse(status_code=422, content={"detail": msg.splitlines()[0] if msg else "bad input"})


async def _body(request: Request, allowed: set[str]) -> dict:
    raw = await request.body()
    try:
        data = json.loads(raw or b"{}")
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise InputError("body: expected a JSON object") from None
    if not isinstance(data, dict):
        raise InputError("body: expected a JSON object")
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise InputError(f"{unknown[0]}: unknown field; allowed: {', '.join(sorted(allowed))}")
    return data


def _num(data: dict, key: str, default: float | None) -> float | None:
    v = data.get(key, default)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise InputError(f"{key}: expected a number, got {v!r}"[:200])
    if not math.isfinite(v):
        raise InputError(f"{key}: must be finite, got {v!r}")
    return float(v)


def _guard(fn):
    async def wrapped(request: Request):
        try:
            return JSONResponse(finite(await fn(request)))
        except InputError as e:
            return _bad(_api_names(str(e)))
        except (ValueError, TypeError, OverflowError, ZeroDivisionError, KeyError) as e:
            return _bad(f"body: {type(e).__name__}: {e}")

    wrapped.__name__ = fn.__name__
    wrapped.__doc__ = fn.__doc__
    return wrapped


def _measured() -> list[dict]:
    """bench.decode packets under results/: a measured throughput the page can start from."""
    from floorline.economics.serving import throughput_from_packet
    from floorline.evidence.collect import repo_root
    from floorline.evidence.store import iter_packets

    results = repo_root() / "results"
    out = []
    if not results.is_dir():
        return out
    for path, pk in iter_packets(results):
        if pk.kind != "bench.decode" or pk.status != "passed" or pk.timing is None:
            continue
        try:
            t = throughput_from_packet(path)
        except InputError:
            continue
        out.append({"label": f"{pk.params.get('model', '?')} batch {t['batch']} ctx {pk.params.get('context', '?')} "
                             f"({Path(path).parent.name})", "tokens_per_s": t["tokens_per_s_per_gpu"],
                    "packet_id": pk.id, "path": str(Path(path).relative_to(results.parent))})
    return out


@router.get("/defaults")
def defaults() -> JSONResponse:
    from floorline.economics.catalog import assumptions, devices

    devs = [{"key": d.key, "name": d.name,
             "usd_per_gpu_hour": d.get("usd_per_gpu_hour").value,
             "usd_per_gpu_hour_source": d.get("usd_per_gpu_hour").source,
             "power_w": d.si("power"), "rack_kw": d.get("rack_power").value if d.get("rack_power") else None}
            for d in devices().values()]
    a = assumptions()
    serving = {k: {"value": q.value, "unit": q.unit, "source": q.source} for k, q in a["serving"].items()}
    capacity = {k: {"value": q.value, "unit": q.unit, "source": q.source} for k, q in a["capacity"].items()}
    return JSONResponse(finite({"devices": devs, "serving": serving, "capacity": capacity, "measured": _measured()}))


@router.get("/hw/{key}")
def hw(key: str) -> JSONResponse:
    from floorline.economics.catalog import device

    try:
        d = device(key)
    except InputError as e:
        return _bad(_api_names(str(e)))
    return JSONResponse({"key": d.key, "name": d.name, "vendor": d.vendor,
                         "fields": {k: {"value": q.value, "unit": q.unit, "source": q.source,
                                        "confidence": q.confidence} for k, q in d.fields}})


SERVING_FIELDS = {"tokens_per_s", "input_tokens_per_s", "hardware_usd_per_gpu_hour", "usd_per_gpu_hour",
                  "rack_capex_usd", "years", "pue", "usd_per_kwh", "rack_kw", "gpus_per_rack", "tokens_per_hour"}


@router.post("/serving")
@_guard
async def serving(request: Request) -> dict:
    """$/GPU-hour, $/M tokens, J/token, and the racks a target tokens/hour needs."""
    from floorline.economics.catalog import positive
    from floorline.economics.serving import ServingInputs, serving_cost

    d = await _body(request, SERVING_FIELDS)
    tps = _num(d, "tokens_per_s", None)
    if tps is None:
        raise InputError("tokens_per_s: required (output tokens/s per GPU)")
    x = ServingInputs.seed_defaults(
        output_tokens_per_s=tps, input_tokens_per_s=_num(d, "input_tokens_per_s", None),
        rack_capex_usd=_num(d, "rack_capex_usd", None), years=_num(d, "years", None), rack_kw=_num(d, "rack_kw", None),
        pue=_num(d, "pue", None), usd_per_kwh=_num(d, "usd_per_kwh", None),
        gpus_per_rack=_num(d, "gpus_per_rack", None), usd_per_gpu_hour=_num(d, "usd_per_gpu_hour", None),
        hardware_usd_per_gpu_hour=_num(d, "hardware_usd_per_gpu_hour", None))
    r = serving_cost(x)
    tph = positive(_num(d, "tokens_per_hour", 1e9), "tokens_per_hour")
    gpus = tph / 3600 / tps
    racks = gpus / x.gpus_per_rack
    r["target"] = {"tokens_per_hour": tph, "gpus": gpus, "racks": racks,
                   "facility_kw": racks * x.rack_kw * x.pue,
                   "usd_per_day": r["rack_hour_usd"] * racks * 24 if x.usd_per_gpu_hour is None
                   else x.usd_per_gpu_hour * gpus * 24,
                   "kwh_per_day": racks * x.rack_kw * x.pue * 24}
    return r


CAPACITY_FIELDS = {"before", "after", "tokens_per_hour", "gpus_per_rack", "rack_kw", "pue", "usd_per_kwh"}


@router.post("/capacity")
@_guard
async def capacity(request: Request) -> dict:
    """GPU-equivalents, racks, kW, kWh/day and $/day freed by a throughput gain."""
    from floorline.economics.capacity import CapacityInputs
    from floorline.economics.capacity import capacity as compute

    d = await _body(request, CAPACITY_FIELDS)
    x = CapacityInputs.seed_defaults(**{k: _num(d, k, None) for k in CAPACITY_FIELDS})
    return compute(x)


TRAINING_FIELDS = {"total_params", "gpu", "precision", "active_ratio", "tokens_per_param", "mfu", "days",
                   "usd_per_gpu_hour", "gpus_per_rack", "available_tokens"}


@router.post("/training")
@_guard
async def training(request: Request) -> dict:
    """C = 6 N_active D -> GPU-hours, GPUs, racks, cost, synthetic top-up."""
    from floorline.economics.catalog import parse_count
    from floorline.economics.training import TrainingInputs, training_cost

    d = await _body(request, TRAINING_FIELDS)
    for k in ("gpu", "precision"):
        if k in d and not isinstance(d[k], str):
            raise InputError(f"{k}: expected a string")
    n = d.get("total_params", "2T")
    if isinstance(n, bool) or not isinstance(n, str | int | float):
        raise InputError("total_params: expected a number or a string like '2T'")
    avail = d.get("available_tokens")
    if avail is not None and (isinstance(avail, bool) or not isinstance(avail, str | int | float)):
        raise InputError("available_tokens: expected a number or a string like '100T'")
    gpr = _num(d, "gpus_per_rack", None)
    x = TrainingInputs.seed_defaults(
        parse_count(n, "total_params"), gpu=d.get("gpu", "b200"), precision=d.get("precision", "bf16"),
        active_ratio=_num(d, "active_ratio", None), tokens_per_param=_num(d, "tokens_per_param", None),
        mfu=_num(d, "mfu", None), days=_num(d, "days", None), usd_per_gpu_hour=_num(d, "usd_per_gpu_hour", None),
        gpus_per_rack=int(gpr) if gpr is not None and gpr >= 1 else gpr,
        available_tokens=parse_count(avail, "available_tokens", allow_zero=True) if avail is not None else None)
    return training_cost(x)
