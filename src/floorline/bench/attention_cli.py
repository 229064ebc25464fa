"""`floorline bench attention`: paged GQA decode attention vs torch SDPA and FlashInfer."""

from __future__ import annotations

import typer


def register(bench_app: typer.Typer) -> None:
    @bench_app.command("attention")
    def attention(
        quick: bool = typer.Option(False, "--quick", help="5 cases, short tuning, 1 GiB ceiling search"),
        json_out: bool = typer.Option(False, "--json", help="print JSON"),
        out: str = typer.Option("", "--out", help="packet directory (default results/<device>/)"),
        context: list[int] = typer.Option([], "--context", help="only these contexts (repeatable)"),
        kv_dtype: list[str] = typer.Option([], "--kv-dtype", help="only these KV dtypes: bf16 | fp8 | fp4"),
        batch: list[int] = typer.Option([], "--batch", help="only these batch sizes (repeatable)"),
        page_size: list[int] = typer.Option([], "--page-size", help="only these page sizes, 0 = contiguous (repeatable)"),
        variant: list[str] = typer.Option(["v1"], "--variant",
                                          help="kernel families to tune and time, each at its best config "
                                               "(repeatable): v1 | v2 | v2-fp8mma | v1-align | v2-fp8mma-align | v1-prefetch"),
    ) -> None:
        """Measure the HBM read ceiling, the FP8/4-bit accuracy report, then every case: ours (paged,
        shuffled) vs torch SDPA (bf16 contiguous) vs FlashInfer, same process; one packet per case."""
        from pathlib import Path

        from floorline.errors import InputError
        from floorline.kernels.kv_cache import KV_DTYPES

        for dt in kv_dtype:
            if dt not in KV_DTYPES:
                raise InputError(f"--kv-dtype: must be one of {', '.join(KV_DTYPES)}, got {dt!r}")
        allowed = ("v1", "v2", "v2-fp8mma", "v1-align", "v2-fp8mma-align", "v1-prefetch")  # bench.attention.VARIANT_FAMILIES, kept torch-free here
        for v in variant:
            if v not in allowed:
                raise InputError(f"--variant: must be one of {', '.join(allowed)}, got {v!r}")
        for c in context:
            if c < 1:
                raise InputError(f"--context: must be >= 1, got {c}")

        from floorline.bench.attention import run, sweep
        from floorline.gpu.probe import device_slug
        from floorline.render import console, print_json, progress, table

        cases = [c for c in sweep(quick) if (not context or c.context in context) and (not kv_dtype or c.kv_dtype in kv_dtype)
                 and (not batch or c.batch in batch) and (not page_size or c.page_size in page_size)]
        if not cases:
            raise InputError("--context/--kv-dtype/--batch/--page-size: no case of the sweep matches")
        if kv_dtype:  # dtypes run in the order given (a time-limited device call runs the first first)
            cases.sort(key=lambda c: kv_dtype.index(c.kv_dtype))
        out_dir = Path(out) if out else Path("results") / device_slug()
        with progress(disable=json_out) as prog:
            task = prog.add_task("bench attention", total=None)
            res = run(quick, out_dir, progress=lambda m: prog.update(task, description=m), cases=cases,
                      families=tuple(dict.fromkeys(variant)))
        if json_out:
            res["accuracy"] = res["accuracy"].__dict__
            print_json(res)
            return
        render(res, table, console)


def render(res, table, console) -> None:
    def f(x, spec):
        return "-" if x is None else format(x, spec)

    console.print(f"HBM read ceiling (same run): {res['ceiling_tbps']:.3f} TB/s ({res['ceiling_config']})")
    acc = res["accuracy"]
    table(f"KV accuracy: rel-L2 vs float64, {acc.tokens} tokens, realistic data", ["format", "rel-L2"],
          [[k, f"{v:.4f}"] for k, v in acc.rel_l2.items()])
    table("decode attention (ours: paged, shuffled pages unless contig)",
          ["case", "mode", "us", "TB/s", "% ceiling", "us/KV head", "SDPA us", "x SDPA", "FlashInfer us", "x FI"],
          [[r["case"], r["mode"], f"{r['us']:.1f}", f"{r['tbps']:.2f}", f"{100 * r['of_ceiling']:.1f}%",
            f"{r['us_per_kv_head']:.2f}", f"{r['sdpa_us']:.1f}", f"{r['vs_sdpa']:.2f}",
            f(r["flashinfer_us"], ".1f") if r["flashinfer_us"] else r["flashinfer"], f(r["vs_flashinfer"], ".2f")]
           for r in res["cases"] if "error" not in r])
    multi = [r for r in res["cases"] if len(r.get("variants", {})) > 1]
    if multi:
        fams = sorted({f for r in multi for f in r["variants"]})
        table("kernel families, each at its best config (same run, same data)", ["case", *[f"{f} us" for f in fams]],
              [[r["case"], *[f(r["variants"].get(x), ".1f") for x in fams]] for r in multi])
    for r in res["cases"]:
        if "error" in r:
            console.print(f"[red]{r['case']}: {r['error']}[/red]")
    reasons = {r["flashinfer_reason"] for r in res["cases"] if r["flashinfer_reason"]}
    for reason in reasons:
        console.print(f"FlashInfer not measured: {reason}")
