"""Report section `allreduce`: our push all-reduce vs NCCL and torch symmetric memory vs the NVLink floor."""

from __future__ import annotations

from floorline.report.registry import ReportContext, SectionResult, section


@section("allreduce", "Small-message all-reduce vs NCCL, torch symmetric memory and the NVLink floor",
         min_gpus=2, order=40)
def allreduce_section(ctx: ReportContext) -> SectionResult:
    from floorline.bench.allreduce import HEADERS, QUICK_SIZES, BenchConfig, plot_svg, run, table_rows

    cfg = BenchConfig(world=2)
    if ctx.quick:
        cfg = BenchConfig(world=2, sizes=QUICK_SIZES, iters=10, eager_iters=50, pingpong_rounds=5000, nccl_variants=())
    res = run(cfg, ctx.out_dir, progress=ctx.progress)
    rows = res["rows"]
    notes = [f"{m}: one-way NVLink latency {f['one_way_us']:.2f} us, graph kernel slot {f['kernel_slot_us']:.2f} us"
             for m, f in res["floor"].items()]
    notes.append(f"peer copy bandwidth {res['link']['gbps']:.0f} GB/s")
    notes += [f"{m}: fused AR+residual+RMSNorm (hidden 4096, 1 token) {f['fused']:.2f} us vs plain all-reduce "
              f"{f['plain']:.2f} us" for m, f in res["fused"].items()]
    plots = [(f"all-reduce latency per op, {m} mode (CUDA graph)", plot_svg([r for r in rows if r.mode == m]))
             for m in res["floor"]]
    from pathlib import Path

    return SectionResult(packets=[Path(r.packet) for r in rows], headers=HEADERS, rows=table_rows(rows, cfg.dtype),
                         plots=plots, notes=notes)
