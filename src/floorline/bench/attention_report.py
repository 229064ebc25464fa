"""Report sections: the HBM ceiling (first, so later sections divide by it) and decode attention."""

from __future__ import annotations

from floorline.report.registry import ReportContext, SectionResult, section


@section("hbm", "HBM streaming ceiling", min_gpus=1, order=10)
def hbm_section(ctx: ReportContext) -> SectionResult:
    from floorline.bench.hbm import tune, write_packet_for

    rows, packets = [], []
    for op in ("read", "write", "copy"):
        ctx.progress(f"hbm {op}")
        r = tune(op, quick=ctx.quick)
        packets.append(write_packet_for(r, ctx.out_dir))
        rows.append([op, f"{r.tbps:.3f}", f"{100 * r.fraction_of_peak:.1f}%" if r.fraction_of_peak else "-",
                     r.config.label(), r.correct])
        if op == "read":
            ctx.shared["hbm_read_ceiling_tbps"] = r.tbps
            ctx.shared["hbm_read_result"] = r
    return SectionResult(packets=packets, headers=["op", "TB/s", "% of datasheet", "best config", "correct"], rows=rows)


@section("attention", "Decode attention vs the HBM ceiling, torch SDPA and FlashInfer", min_gpus=1, order=20)
def attention_section(ctx: ReportContext) -> SectionResult:
    from floorline.bench.attention import run
    from floorline.report.plot import line_plot

    res = run(ctx.quick, ctx.out_dir, progress=ctx.progress, ceiling=ctx.shared.get("hbm_read_result"))
    rows = [[r["case"], r["mode"], f"{r['us']:.1f}", f"{100 * r['of_ceiling']:.1f}%", f"{r['vs_sdpa']:.2f}",
             "-" if r["vs_flashinfer"] is None else f"{r['vs_flashinfer']:.2f}"] for r in res["cases"] if "error" not in r]
    series: dict[str, list[tuple[float, float]]] = {}
    for r in res["cases"]:
        if "error" in r:
            continue
        dtype, shape, *layout = r["case"].split(" ")
        batch, ctxlen = shape.split("x")
        if batch == "1" and " ".join(layout) in ("page 64", "contig"):
            series.setdefault(f"ours {dtype} {' '.join(layout)}", []).append((int(ctxlen), 100 * r["of_ceiling"]))
    acc = res["accuracy"]
    return SectionResult(
        packets=[__import__("pathlib").Path(p) for p in res["packets"]],
        headers=["case", "mode", "us", "% ceiling", "x SDPA", "x FlashInfer"], rows=rows,
        plots=[("% of the same-run HBM read ceiling vs context (batch 1)",
                line_plot(series, x_label="context (tokens)", y_label="% of ceiling", log_x=True, y_ref=100.0))],
        notes=[f"HBM read ceiling {res['ceiling_tbps']:.3f} TB/s",
               "KV accuracy rel-L2 vs float64: " + ", ".join(f"{k} {v:.4f}" for k, v in acc.rel_l2.items())],
    )
