"""`floorline replay TRACE`: parse, call replay.run, render."""

from __future__ import annotations

from pathlib import Path

import typer

JSON = typer.Option(False, "--json", help="print JSON (every printed number is in it)")

_ROWS = [  # (label, key, format)
    ("requests", "requests", "{:,}"),
    ("instances x GPUs", None, None),
    ("cache blocks / instance", "cache_blocks", None),
    ("hit ratio (blocks)", "hit_ratio_blocks", "{:.4f}"),
    ("hit ratio (tokens)", "hit_ratio_tokens", "{:.4f}"),
    ("prefill tokens computed", "prefill_tokens_computed", "{:,}"),
    ("prefill tokens reused", "prefill_tokens_reused", "{:,}"),
    ("KV created", "kv_bytes_created", "bytes"),
    ("KV reused", "kv_bytes_reused", "bytes"),
    ("KV evicted", "kv_bytes_evicted", "bytes"),
    ("TTFT p50/p95/p99 ms", "ttft_ms", "pct"),
    ("TPOT p50/p95/p99 ms", "tpot_ms", "pct"),
    ("GPU-seconds (busy)", "gpu_seconds", "{:,.1f}"),
    ("GPU-seconds (provisioned)", "gpu_seconds_provisioned", "{:,.1f}"),
    ("cost / request", "cost_per_request_usd", "${:.6f}"),
    ("cost / successful task", "cost_per_successful_task_usd", "${:.6f}"),
    ("energy / request", "energy_per_request_j", "{:,.1f} J"),
    ("$/M output tokens", "usd_per_m_output_tokens", "${:.4f}"),
]


def _fmt(r: dict, key: str | None, fmt: str | None, label: str) -> str:
    if key is None:
        return f"{r['instances']} x {r['config']['gpus_per_instance']} ({r['routing']})"
    v = r[key]
    if key == "cache_blocks":
        return "unbounded" if not v else f"{v:,}"
    if v is None:
        return "-"
    if fmt == "bytes":
        return f"{v / 1e12:,.3f} TB"
    if fmt == "pct":
        return " / ".join("-" if v[q] is None else f"{v[q]:,.1f}" for q in ("p50", "p95", "p99"))
    return fmt.format(v)


def _render(results: list[tuple[str, dict]], title: str) -> None:
    from rich.console import Console
    from rich.table import Table

    from floorline.render import console

    t = Table(title=title)
    for h in ["", *(name for name, _ in results)]:
        t.add_column(h, no_wrap=True)
    for label, key, fmt in _ROWS:
        t.add_row(label, *(_fmt(r, key, fmt, label) for _, r in results))
    Console(highlight=False, width=max(console.width, 120)).print(t)


def register(app: typer.Typer) -> None:
    @app.command("replay")
    def replay_cmd(
        trace: Path = typer.Argument(..., help="Mooncake JSONL, or plain CSV/JSONL (arrival, input, output[, prefix, success])"),
        cache_blocks: int = typer.Option(None, "--cache-blocks", help="blocks per instance; 0 = unbounded; default: HBM minus weights"),
        block_size: int = typer.Option(512, "--block-size", help="tokens per KV block (Mooncake traces: 512)"),
        instances: int = typer.Option(1, "--instances", help="serving instances"),
        routing: str = typer.Option("cache-aware", "--routing", help="cache-aware | round-robin"),
        model: str = typer.Option("llama-3.1-8b", "--model", help="preset (models.toml) or a dense HF config.json"),
        gpu: str = typer.Option("h100", "--gpu", help="catalog device (floorline hw list)"),
        gpus_per_instance: int = typer.Option(1, "--gpus-per-instance", help="GPUs per instance (TP, ideal scaling)"),
        weight_dtype: str = typer.Option("bf16", "--weight-dtype", help="bf16|fp8|fp4|..."),
        kv_dtype: str = typer.Option("bf16", "--kv-dtype", help="bf16|fp8|fp4|..."),
        mem_fraction: float = typer.Option(0.9, "--mem-fraction", help="HBM fraction for weights+KV (vLLM default 0.9)"),
        max_batch: int = typer.Option(256, "--max-batch", help="max running sequences per instance"),
        usd_per_gpu_hour: float = typer.Option(None, "--usd-per-gpu-hour", help="default: the catalog's for --gpu"),
        power_w: float = typer.Option(None, "--power-w", help="W per busy GPU; default: the catalog's"),
        pue: float = typer.Option(1.2, "--pue", help="facility overhead on GPU energy"),
        success_rate: float = typer.Option(1.0, "--success-rate", help="share of requests that succeed (if the trace has no success column)"),
        compute_efficiency: float = typer.Option(1.0, "--compute-efficiency", help="fraction of peak FLOP/s reached (1 = floor)"),
        bandwidth_efficiency: float = typer.Option(1.0, "--bandwidth-efficiency", help="fraction of HBM bandwidth reached (1 = floor)"),
        calibrate: Path = typer.Option(None, "--calibrate", help="bench.decode packet: use its measured fraction of floor"),
        compare: str = typer.Option(None, "--compare", help="KEY=VALUE: replay again with one setting changed, side by side"),
        limit: int = typer.Option(None, "--limit", help="replay only the first N requests"),
        packet_dir: Path = typer.Option(None, "--packet-dir", help="also write a `replay` evidence packet here"),
        json_out: bool = JSON,
    ) -> None:
        """Replay a request trace: prefix-cache hits, TTFT/TPOT, GPU-seconds, cost and energy per task."""
        from floorline.errors import InputError
        from floorline.replay.run import ReplaySettings, load, parse_compare, run

        if limit is not None and limit < 1:
            raise InputError(f"--limit: must be >= 1, got {limit}")
        s = ReplaySettings(model=model, gpu=gpu, gpus_per_instance=gpus_per_instance, instances=instances,
                           routing=routing, cache_blocks=cache_blocks, block_size=block_size,
                           weight_dtype=weight_dtype.lower(), kv_dtype=kv_dtype.lower(), mem_fraction=mem_fraction,
                           max_batch=max_batch, usd_per_gpu_hour=usd_per_gpu_hour, power_w=power_w, pue=pue,
                           success_rate=success_rate, compute_efficiency=compute_efficiency,
                           bandwidth_efficiency=bandwidth_efficiency, calibrate=str(calibrate) if calibrate else None)
        other = parse_compare(compare, s) if compare else None
        from floorline.replay.run import prepare

        prepare(s)  # bad settings fail before the trace is read
        if other is not None:
            prepare(other)
        reqs = load(trace, block_size, limit)

        from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn

        from floorline.render import progress

        with progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()) as prog:
            a = run(reqs, s, prog)
            b = run(reqs, other, prog) if other is not None else None
        if packet_dir is not None:
            from floorline.replay.evidence import write_replay_packet

            a["packet"] = str(write_replay_packet(trace, a, b, packet_dir, compare))
        if json_out:
            from floorline.render import print_json

            print_json(a if b is None else {"compare": compare, "a": a, "b": b})
            return
        title = f"replay {trace.name}: {s.model} on {s.gpu}, {a['provenance']['time_model']}"
        _render([("base", a)] if b is None else [("base", a), (compare, b)], title)
        from floorline.render import console

        console.print(f"cache: {a['provenance']['cache_blocks_source']}; success: {a['success_basis']}")
        if "packet" in a:
            console.print(f"packet: {a['packet']}")
