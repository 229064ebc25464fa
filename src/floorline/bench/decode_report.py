"""Report section: the Qwen3-MoE decoder's ms/token against the floor and transformers, same run."""

from __future__ import annotations

from floorline.report.registry import ReportContext, SectionResult, section


@section("decode", "Qwen3-30B-A3B decode vs the HBM floor and transformers", min_gpus=1, order=30)
def decode_section(ctx: ReportContext) -> SectionResult:
    from floorline.bench import decode as bench
    from floorline.report.plot import line_plot

    # quick: a cut-down model at batch 1 and 1K (seconds); full: every batch x context that fits
    layers = 8 if ctx.quick else None
    batches = (1,) if ctx.quick else bench.BATCHES
    contexts = (1024,) if ctx.quick else bench.CONTEXTS
    res = bench.run("qwen3-30b-a3b", layers, None, batches, contexts, "bf16", "fp16", 10 if ctx.quick else 30,
                    baseline=True, out_dir=ctx.out_dir, tune=not ctx.quick,
                    ceiling_tbps=ctx.shared.get("hbm_read_ceiling_tbps"), progress=ctx.progress)
    series: dict[str, list[tuple[float, float]]] = {}
    for p in res["points"]:
        if p.ms:
            series.setdefault(f"batch {p.batch}", []).append((p.context, 100 * p.floor_ms / p.ms))
    cfg = res["config"]
    notes = [f"HBM read ceiling {res['ceiling_tbps']:.3f} TB/s (same run)",
             f"transformers: {res['baseline_setting'] or res['baseline_error']}"]
    eager = [p for p in res["points"] if p.hf_eager_ms]
    if eager:
        notes.append(f"second peer, transformers eager ({res['eager_setting'].get('setting')}): "
                     + ", ".join(f"batch {p.batch} context {p.context} {p.hf_eager_ms:.1f} ms" for p in eager))
    elif res.get("eager_error"):
        notes.append(f"second peer, transformers eager: not measured ({res['eager_error']})")
    if cfg.cut_down:
        notes.append("cut down: " + ", ".join(cfg.cut_down))
    return SectionResult(
        packets=[p.packet for p in res["points"] if p.packet],
        headers=bench.HEADERS, rows=bench.summary_rows(res),
        plots=[("% of the decode floor vs context", line_plot(series, x_label="context (tokens)", y_label="% of floor",
                                                             log_x=True, y_ref=100.0))] if series else [],
        notes=notes,
    )
