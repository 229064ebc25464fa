"""`floorline hw ...` and `floorline cost ...`: parse, call economics, render. No computation here."""

from __future__ import annotations

from pathlib import Path

import typer

from floorline.render import console, print_json, table

JSON = typer.Option(False, "--json", help="print JSON (every printed number is in it)")


def _wide_table(title: str, headers: list[str], rows: list[list]) -> None:
    """A table that keeps its columns whole when stdout is a pipe (rich would squeeze to 80 columns)."""
    from rich.console import Console
    from rich.table import Table

    t = Table(title=title)
    for h in headers:
        t.add_column(h, no_wrap=True)
    for r in rows:
        t.add_row(*map(str, r))
    Console(highlight=False, width=max(console.width, 150)).print(t)


def _money(usd: float) -> str:
    a = abs(usd)
    if a >= 1e9:
        return f"${usd / 1e9:.1f}B"
    if a >= 1e6:
        return f"${usd / 1e6:.0f}M"
    if a >= 1e3:
        return f"${usd:,.0f}"
    return f"${usd:.2f}" if a >= 1 else f"${usd:.4f}"


def _tokens(n: float) -> str:
    for div, suf in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "K")):
        if n >= div:
            return f"{n / div:g}{suf}"
    return f"{n:g}"


def _hw(app: typer.Typer) -> None:
    hw = typer.Typer(help="The hardware catalog: datasheet figures with unit, source and confidence.",
                     no_args_is_help=True)
    app.add_typer(hw, name="hw")

    @hw.command("list")
    def hw_list(json_out: bool = JSON) -> None:
        """Every device in the catalog with its headline numbers."""
        from floorline.economics.catalog import devices

        rows, data = [], []
        for d in devices().values():
            g = {k: (q.value if q else None) for k in ("bf16_dense", "fp8_dense", "fp4_dense", "hbm_capacity",
                                                       "hbm_bw", "scale_up_bw", "power", "usd_per_gpu_hour")
                 for q in [d.get(k)]}
            data.append({"key": d.key, "name": d.name, "vendor": d.vendor, **g})
            rows.append([d.key, *("-" if v is None else f"{v:g}" for v in g.values())])
        if json_out:
            print_json({"devices": data})
            return
        _wide_table("hardware catalog (dense tensor peaks; `floorline hw show NAME` for sources)",
              ["key", "BF16 TF", "FP8 TF", "FP4 TF", "HBM GB", "TB/s", "link GB/s", "W", "$/GPU-h"],
              rows)

    @hw.command("show")
    def hw_show(name: str = typer.Argument(..., help="device key, e.g. h100, gb200-nvl72"), json_out: bool = JSON
                ) -> None:
        """One device: every number with its unit, source and confidence."""
        from floorline.economics.catalog import device

        d = device(name, "name")
        fields = {k: {"value": q.value, "unit": q.unit, "source": q.source, "confidence": q.confidence}
                  for k, q in d.fields}
        if json_out:
            print_json({"key": d.key, "name": d.name, "vendor": d.vendor, "fields": fields})
            return
        console.print(f"[bold]{d.name}[/bold] ({d.key}, {d.vendor})")
        for k, f in fields.items():
            console.print(f"  {k:<17} {f['value']:>10g} {f['unit']:<13} \\[{f['confidence']}]")
            console.print(f"      source: {f['source']}", soft_wrap=True)

    @hw.command("read-time")
    def hw_read_time(
        params: str = typer.Option(..., "--params", help="parameter count, e.g. 70e9 or 70B"),
        dtype: str = typer.Option("fp16", "--dtype", help="fp32|bf16|fp16|fp8|int8|fp4|int4"),
        gpu: str = typer.Option(None, "--gpu", help="device key; omit for every device"),
        json_out: bool = JSON,
    ) -> None:
        """Time to read the weights once from HBM at the datasheet bandwidth (params x bytes / BW)."""
        from floorline.economics.catalog import DTYPE_BYTES, device, devices, parse_count, weight_read_time_s

        n = parse_count(params, "--params")
        devs = [device(gpu)] if gpu else list(devices().values())
        rows = []
        for d in devs:
            t = weight_read_time_s(n, dtype, d)
            rows.append({"gpu": d.key, "params": n, "dtype": dtype.lower(), "bytes": n * DTYPE_BYTES[dtype.lower()],
                         "hbm_bw_bytes_per_s": d.si("hbm_bw"), "read_time_s": t, "read_time_ms": t * 1e3,
                         "fits_in_hbm": n * DTYPE_BYTES[dtype.lower()] <= d.si("hbm_capacity")})
        if json_out:
            print_json(rows[0] if gpu else {"rows": rows})
            return
        for r in rows:
            fit = "" if r["fits_in_hbm"] else "  (does not fit in one GPU's HBM)"
            console.print(f"{r['gpu']}: {_tokens(n)} params x {r['bytes'] / n:g} B at "
                          f"{r['hbm_bw_bytes_per_s'] / 1e12:g} TB/s = {r['read_time_ms']:.1f} ms{fit}")


def _cost(app: typer.Typer) -> None:
    cost = typer.Typer(help="Training compute/cost, capacity freed, and serving price/energy.", no_args_is_help=True)
    app.add_typer(cost, name="cost")

    @cost.command("training")
    def cost_training(
        total_params: str = typer.Option("2T,4T,10T", "--total-params", help="total parameters, K/M/B/T suffixes; a comma list gives a table"),
        active_ratio: float = typer.Option(None, "--active-ratio", help="active/total parameters per token \\[seed 003: 0.05]"),
        tokens_per_param: float = typer.Option(None, "--tokens-per-param", help="training tokens per total parameter [40]"),
        gpu: str = typer.Option("b200", "--gpu", help="catalog device(s), comma list allowed"),
        precision: str = typer.Option("bf16", "--precision", help="bf16|fp8|fp4 (comma list allowed)"),
        mfu: float = typer.Option(None, "--mfu", help="model FLOPs utilisation [0.2]"),
        days: float = typer.Option(None, "--days", help="wall-clock training days [90]"),
        usd_per_gpu_hour: float = typer.Option(None, "--usd-per-gpu-hour", help="price; default: the catalog's for the GPU"),
        gpus_per_rack: int = typer.Option(None, "--gpus-per-rack", help="GPUs per rack [72]"),
        available_tokens: str = typer.Option(None, "--available-tokens", help="real tokens available [100T]; the rest is synthetic"),
        api: str = typer.Option("sonnet-4.6", "--api", help="price table for synthetic tokens (assumptions.toml)"),
        synthetic_usd_per_m: float = typer.Option(None, "--synthetic-usd-per-m", help="self-hosted generation $/M tokens"),
        json_out: bool = JSON,
    ) -> None:
        """C = 6 N_active D -> GPU-hours, GPUs, racks, cost, plus the synthetic-data top-up."""
        from floorline.economics.catalog import parse_count
        from floorline.economics.training import TrainingInputs, training_cost

        sizes = [parse_count(s, "--total-params") for s in total_params.split(",")]
        avail = parse_count(available_tokens, "--available-tokens", allow_zero=True) if available_tokens is not None else None
        results = []
        for g in gpu.split(","):
            for p in precision.split(","):
                for n in sizes:
                    x = TrainingInputs.seed_defaults(
                        n, gpu=g.strip(), precision=p.strip(), active_ratio=active_ratio,
                        tokens_per_param=tokens_per_param, mfu=mfu, days=days, usd_per_gpu_hour=usd_per_gpu_hour,
                        gpus_per_rack=gpus_per_rack, available_tokens=avail, api=api,
                        synthetic_usd_per_m=synthetic_usd_per_m)
                    results.append(training_cost(x))
        if json_out:
            print_json(results[0] if len(results) == 1 else {"rows": results})
            return
        has_self = any("self_hosted" in r["synthetic_cost_usd"] for r in results)
        rows = []
        for r in results:
            i = r["inputs"]
            syn = r["synthetic_cost_usd"]
            some = r["synthetic_tokens"] > 0
            row = [_tokens(i["total_params"]), f"{i['gpu']}/{i['precision']}", f"${i['usd_per_gpu_hour']:g}",
                   f"{r['gpu_hours'] / 1e6:,.1f}M", f"{r['gpus']:,.0f}", f"{r['racks']:,.0f}", _money(r["cost_usd"]),
                   _tokens(r["tokens"]), _tokens(r["synthetic_tokens"]) if some else "0",
                   _money(syn["standard"]) if some else "-", _money(syn["batch"]) if some else "-"]
            if has_self:
                row.append(_money(syn["self_hosted"]) if some else "-")
            rows.append(row)
        i0 = results[0]["inputs"]
        headers = ["params", "gpu", "$/h", "GPU-h", "GPUs", "racks", "cost", "data", "synth", "std", "batch"]
        _wide_table(f"training: active {i0['active_ratio']:g}, {i0['tokens_per_param']:g} tokens/param, MFU {i0['mfu']:g}, "
              f"{i0['days']:g} days, {i0['gpus_per_rack']} GPUs/rack; synthetic beyond "
              f"{_tokens(i0['available_tokens'])} real tokens at {api} prices (std/batch)",
              headers + (["self-hosted"] if has_self else []), rows)
        console.print("C = 6 x N_active x D; compute_flops per row in --json")

    @cost.command("capacity")
    def cost_capacity(
        before: float = typer.Option(None, "--before", help="tokens/s/GPU before \\[seed 002: 2173]"),
        after: float = typer.Option(None, "--after", help="tokens/s/GPU after [12576]"),
        tokens_per_hour: str = typer.Option(None, "--tokens-per-hour", help="target tokens/hour [1B]"),
        gpus_per_rack: float = typer.Option(None, "--gpus-per-rack", help="[72]"),
        rack_kw: float = typer.Option(None, "--rack-kw", help="rack IT power, kW [132]"),
        pue: float = typer.Option(None, "--pue", help="[1.2]"),
        usd_per_kwh: float = typer.Option(None, "--usd-per-kwh", help="[0.10]"),
        json_out: bool = JSON,
    ) -> None:
        """GPU-equivalents, racks, kW, kWh/day and $/day freed by a throughput gain."""
        from floorline.economics.capacity import CapacityInputs, capacity
        from floorline.economics.catalog import parse_count

        tph = parse_count(tokens_per_hour, "--tokens-per-hour") if tokens_per_hour is not None else None
        r = capacity(CapacityInputs.seed_defaults(before=before, after=after, tokens_per_hour=tph,
                                                  gpus_per_rack=gpus_per_rack, rack_kw=rack_kw, pue=pue,
                                                  usd_per_kwh=usd_per_kwh))
        if json_out:
            print_json(r)
            return
        i = r["inputs"]
        table(f"capacity: {i['before']:,.0f} -> {i['after']:,.0f} tokens/s/GPU at {_tokens(i['tokens_per_hour'])} "
              f"tokens/hour, {i['gpus_per_rack']:g} GPUs/rack, {i['rack_kw']:g} kW, PUE {i['pue']:g}, "
              f"${i['usd_per_kwh']:g}/kWh", ["quantity", "value"], [
                  ["capacity ratio", f"{r['capacity_ratio']:.2f}x"],
                  ["GPU-equivalents before", f"{r['before_gpu_equiv']:.1f}"],
                  ["GPU-equivalents after", f"{r['after_gpu_equiv']:.1f}"],
                  ["GPU-equivalents freed", f"{r['freed_gpu_equiv']:.1f}"],
                  ["racks freed", f"{r['freed_racks']:.2f}"],
                  ["facility kW freed", f"{r['facility_kw_freed']:.1f}"],
                  ["kWh/day", f"{r['kwh_per_day']:,.0f}"],
                  ["$/day", f"${r['usd_per_day']:,.0f}"]])

    @cost.command("serving")
    def cost_serving(
        tokens_per_s: float = typer.Option(None, "--tokens-per-s", help="output (decode) tokens/s per GPU"),
        input_tokens_per_s: float = typer.Option(None, "--input-tokens-per-s", help="input (prefill) tokens/s per GPU"),
        input_per_output: float = typer.Option(None, "--input-per-output", help="prompt tokens per output token, for a blended price"),
        evidence: Path = typer.Option(None, "--evidence", help="a `bench decode` packet: its measured tokens/s"),
        rack_capex: float = typer.Option(None, "--rack-capex", help="rack capex, USD \\[seed 002: 3.9M]"),
        years: float = typer.Option(None, "--years", help="depreciation years [3]"),
        rack_kw: float = typer.Option(None, "--rack-kw", help="rack IT power, kW [132]"),
        pue: float = typer.Option(None, "--pue", help="[1.2]"),
        usd_per_kwh: float = typer.Option(None, "--usd-per-kwh", help="[0.10]"),
        gpus_per_rack: float = typer.Option(None, "--gpus-per-rack", help="[72]"),
        usd_per_gpu_hour: float = typer.Option(None, "--usd-per-gpu-hour", help="all-in price, instead of the rack-hour"),
        hardware_usd_per_gpu_hour: float = typer.Option(None, "--hardware-usd-per-gpu-hour",
                                                        help="capex/rental share per GPU-hour instead of --rack-capex/--years; power is added"),
        json_out: bool = JSON,
    ) -> None:
        """$/GPU-hour, $/M tokens (input and output), J/token and kWh per M tokens."""
        from floorline.economics.serving import ServingInputs, serving_cost, throughput_from_packet
        from floorline.errors import InputError

        prov = None
        if evidence is not None:
            if tokens_per_s is not None:
                raise InputError("--tokens-per-s: give either --tokens-per-s or --evidence, not both")
            prov = throughput_from_packet(evidence)
            tokens_per_s = prov["tokens_per_s_per_gpu"]
        if tokens_per_s is None:
            raise InputError("--tokens-per-s: required (output tokens/s per GPU), or pass --evidence PACKET")
        r = serving_cost(ServingInputs.seed_defaults(
            output_tokens_per_s=tokens_per_s, input_tokens_per_s=input_tokens_per_s,
            input_per_output=input_per_output, rack_capex_usd=rack_capex, years=years, rack_kw=rack_kw, pue=pue,
            usd_per_kwh=usd_per_kwh, gpus_per_rack=gpus_per_rack, usd_per_gpu_hour=usd_per_gpu_hour,
            hardware_usd_per_gpu_hour=hardware_usd_per_gpu_hour))
        r["evidence"] = prov
        if json_out:
            print_json(r)
            return
        rows = [["rack-hour", f"${r['rack_hour_usd']:.2f} (capex ${r['rack_hour_capex_usd']:.2f} + power "
                 f"${r['rack_hour_power_usd']:.2f})"],
                ["$/GPU-hour", f"${r['usd_per_gpu_hour']:.3f}"],
                ["output tokens/s/GPU", f"{tokens_per_s:,.1f}"],
                ["$/M output tokens", f"${r['usd_per_m_output_tokens']:.4f}"]]
        if r["usd_per_m_input_tokens"] is not None:
            rows.append(["$/M input tokens", f"${r['usd_per_m_input_tokens']:.4f}"])
        if "usd_per_m_output_tokens_with_input" in r:
            rows.append(["$/M output tokens incl. their input", f"${r['usd_per_m_output_tokens_with_input']:.4f}"])
        rows += [["facility W per GPU", f"{r['facility_w_per_gpu']:.0f}"],
                 ["J per output token", f"{r['j_per_output_token']:.4g}"],
                 ["kWh per M output tokens", f"{r['kwh_per_m_output_tokens']:.4g}"],
                 ["racks for 1B output tokens/hour", f"{r['racks_per_b_tokens_per_hour']:.2f}"]]
        if r["j_per_input_token"] is not None:
            rows.append(["J per input token", f"{r['j_per_input_token']:.4g}"])
        title = "serving economics"
        if prov:
            title += f" from {prov['packet_path']} (packet {prov['packet_id'][:12]}, batch {prov['batch']}, " \
                     f"{prov['ms_per_token']:.3f} ms/token)"
        table(title, ["quantity", "value"], rows)


def register(app: typer.Typer) -> None:
    _hw(app)
    _cost(app)
