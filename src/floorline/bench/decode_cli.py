"""`floorline bench decode`: registered under `floorline bench`."""

from __future__ import annotations

from pathlib import Path

import typer

from floorline.errors import InputError


def _ints(text: str, name: str) -> tuple[int, ...]:
    try:
        vals = tuple(int(t.strip().lower().replace("k", "")) * (1024 if t.strip().lower().endswith("k") else 1)
                     for t in text.split(",") if t.strip())
    except ValueError:
        raise InputError(f"--{name}: must be comma-separated integers (e.g. 1,8,64 or 1k,32k), got {text!r}") from None
    if not vals or min(vals) < 1:
        raise InputError(f"--{name}: must be positive integers, got {text!r}")
    return vals


def register(bench_app: typer.Typer) -> None:
    @bench_app.command("decode")
    def decode_cmd(
        model: str = typer.Option("qwen3-30b-a3b", "--model"),
        layers: int = typer.Option(None, "--layers"),
        experts: int = typer.Option(None, "--experts"),
        batch: str = typer.Option("1,8,64", "--batch"),
        context: str = typer.Option("1k,32k,128k", "--context"),
        weight_dtype: str = typer.Option("bf16", "--weight-dtype", help="bf16 or fp8 (e4m3, per-channel scales)"),
        kv_dtype: str = typer.Option(None, "--kv-dtype", help="fp16 or bf16, the same bytes (default: fp16, the "
                                                                "datapath decode --check validates; bf16 with --tp)"),
        tp: int = typer.Option(1, "--tp"),
        tp_mode: str = typer.Option("thread", "--tp-mode", help="with --tp > 1: thread (one host thread) or process"),
        iters: int = typer.Option(30, "--iters", help="timed decode steps per point"),
        baseline: bool = typer.Option(True, "--baseline/--no-baseline", help="transformers on the same weights"),
        baseline_settings: str = typer.Option(None, "--baseline-settings",
                                              help="comma-separated transformers settings to try (default: all, "
                                                   "fastest expected first)"),
        tune: bool = typer.Option(True, "--tune/--no-tune", help="pick GEMV tiles on this device first"),
        time_budget: float = typer.Option(None, "--time-budget", help="seconds; later points are skipped after it"),
        results: Path = typer.Option(None, "--results", help="packet directory (default results/<device>/)"),
        no_evidence: bool = typer.Option(False, "--no-evidence"),
        as_json: bool = typer.Option(False, "--json"),
    ) -> None:
        """Decode ms/token and tokens/s vs the HBM floor and vs transformers, same run, same weights."""
        from floorline.bench import decode as bench
        from floorline.render import console, err_console, print_json, table

        if tp < 1:
            raise InputError(f"--tp: must be >= 1, got {tp}")
        if kv_dtype is None:  # the tensor-parallel ranks keep a bf16 cache (model/tp.py)
            from floorline.model.fast import DEFAULT_KV_DTYPE

            kv_dtype = DEFAULT_KV_DTYPE if tp == 1 else "bf16"
        if iters < 3:
            raise InputError(f"--iters: must be >= 3, got {iters}")
        names = None
        if baseline_settings:
            from floorline.bench.decode_hf import BY_NAME

            names = tuple(n.strip() for n in baseline_settings.split(",") if n.strip())
            bad = [n for n in names if n not in BY_NAME]
            if bad or not names:
                raise InputError(f"--baseline-settings: must be a comma-separated list of {', '.join(BY_NAME)}, "
                                 f"got {baseline_settings!r}")
        out_dir = None
        if not no_evidence:
            from floorline.gpu.probe import device_slug

            out_dir = results or Path("results") / device_slug()
        if tp > 1:
            from floorline.bench.decode_tp_cli import run_tp_cli

            run_tp_cli(model, layers, experts, tp, _ints(batch, "batch"), _ints(context, "context"), weight_dtype,
                       kv_dtype, iters, out_dir, tune, time_budget, as_json, tp_mode)
            return
        res = bench.run(model, layers, experts, _ints(batch, "batch"), _ints(context, "context"), weight_dtype,
                        kv_dtype, iters, baseline, out_dir, tune, deadline_s=time_budget,
                        progress=lambda m: err_console.print(f"[dim]{m}[/dim]"), baseline_settings=names)
        cfg = res["config"]
        if as_json:
            print_json({
                "model": cfg.name, "layers": cfg.num_hidden_layers, "experts": cfg.num_experts,
                "cut_down": list(cfg.cut_down), "hbm_read_ceiling_tbps": res["ceiling_tbps"],
                "kv_dtype": kv_dtype, "baseline": res["baseline_setting"] or res["baseline_error"],
                "eager_peer": res["eager_setting"] or res["eager_error"],
                "launch": res["launch"].as_dict(),
                "tune": res["tune"], "profile": res["profile"],
                "points": [{"batch": p.batch, "context": p.context, "ms_per_token": p.ms,
                            "tokens_per_s": p.batch * 1e3 / p.ms if p.ms else None, "floor_ms": p.floor_ms,
                            "fraction_of_floor": p.floor_ms / p.ms if p.ms else None, "floor_bytes": p.floor_bytes,
                            "transformers_ms": p.hf_ms, "ratio_vs_transformers": p.hf_ms / p.ms if p.hf_ms else None,
                            "transformers_eager_ms": p.hf_eager_ms,
                            "ratio_vs_transformers_eager": p.hf_eager_ms / p.ms if p.hf_eager_ms else None,
                            "skipped": p.skipped, "packet": str(p.packet) if p.packet else None}
                           for p in res["points"]],
            })
            return
        cut = f" (cut down: {', '.join(cfg.cut_down)})" if cfg.cut_down else ""
        table(f"bench decode: {cfg.name}{cut}, {weight_dtype} weights, {kv_dtype} K/V, HBM ceiling {res['ceiling_tbps']:.2f} TB/s",
              bench.HEADERS, bench.summary_rows(res))
        if res["baseline_setting"]:
            console.print(f"transformers setting: {res['baseline_setting']}")

    @bench_app.command("decode-timeline")
    def decode_timeline_cmd(
        model: str = typer.Option("qwen3-30b-a3b", "--model"),
        layers: int = typer.Option(None, "--layers"),
        context: str = typer.Option("1k", "--context"),
        launch_from: Path = typer.Option(None, "--launch-from",
                                         help="a bench.decode packet whose tuned launch to start from (else tune here)"),
        variants: str = typer.Option("tuned", "--variants", help="comma-separated launch variants: tuned, no-pdl, "
                                     "no-pdl-experts, pdl-all-no-down-prefetch, pdl-all-evict-first, ... (an unknown "
                                     "name lists them all)"),
        out: Path = typer.Option(None, "--out", help="write the full timelines here (JSON)"),
        as_json: bool = typer.Option(False, "--json"),
    ) -> None:
        """Where the batch-1 CUDA-graph step's time goes, kernel by kernel, as it runs (PDL included):
        each kernel's increment to the step's finish line, per launch variant. A diagnostic: no packet."""
        from floorline.bench.decode_timeline import run_timeline
        from floorline.render import err_console, print_json, table

        ctx = _ints(context, "context")
        if len(ctx) != 1:
            raise InputError(f"--context: one context, got {context!r}")
        res = run_timeline(model, layers, ctx[0], launch_from, [v.strip() for v in variants.split(",") if v.strip()],
                           out, progress=lambda m: err_console.print(f"[dim]{m}[/dim]"))
        if as_json:
            print_json(res)
            return
        for name, r in res["variants"].items():
            if "error" in r:
                err_console.print(f"{name}: {r['error']}")
                continue
            table(f"decode timeline, {name}: replay {r['replay_us']:.1f} us/step, span {r['span_us']:.1f} us",
                  ["kernel", "launches", "increment us", "duration us"],
                  [[k["kernel"], k["launches_per_step"], f"{k['increment_us']:.1f}", f"{k['duration_us']:.1f}"]
                   for k in r["kernels"]])

