"""`floorline bench hbm`: the streaming ceiling (read, write, copy)."""

from __future__ import annotations

import typer


def register(bench_app: typer.Typer) -> None:
    @bench_app.command("hbm")
    def hbm(
        op: list[str] = typer.Option(["read", "write", "copy"], "--op", help="read | write | copy (repeatable)"),
        quick: bool = typer.Option(False, "--quick", help="1 GiB buffers and a short search"),
        json_out: bool = typer.Option(False, "--json", help="print JSON"),
        out: str = typer.Option("", "--out", help="packet directory (default results/<device>/)"),
    ) -> None:
        """Tune streaming read/write/copy over block, warps, unroll, grid and cache hints; report TB/s
        and the share of the datasheet peak; write one bench.hbm packet per op."""
        from pathlib import Path

        from floorline.errors import InputError
        from floorline.kernels.hbm_stream import OPS

        for o in op:
            if o not in OPS:
                raise InputError(f"--op: must be one of {', '.join(OPS)}, got {o!r}")
        from floorline.bench.hbm import tune, write_packet_for
        from floorline.gpu.probe import device_slug
        from floorline.render import print_json, progress, table

        out_dir = Path(out) if out else Path("results") / device_slug()
        results, paths = [], []
        with progress(disable=json_out) as prog:
            task = prog.add_task("bench hbm", total=len(op))
            for o in op:
                r = tune(o, quick=quick, progress=lambda m: prog.update(task, description=m))
                results.append(r)
                paths.append(write_packet_for(r, out_dir))
                prog.advance(task)
        rows = [{"op": r.op, "tbps": r.tbps, "peak_tbps": r.peak_tbps, "fraction_of_peak": r.fraction_of_peak,
                 "config": r.config.label(), "correct": r.correct, "packet": str(p)} for r, p in zip(results, paths, strict=True)]
        if json_out:
            print_json(rows)
            return
        table("HBM streaming ceiling", ["op", "TB/s", "% of peak", "best config", "correct", "packet"],
              [[r["op"], f"{r['tbps']:.3f}", f"{100 * r['fraction_of_peak']:.1f}%" if r["fraction_of_peak"] else "-",
                r["config"], r["correct"], r["packet"]] for r in rows])
