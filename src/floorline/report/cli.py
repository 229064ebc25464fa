from __future__ import annotations

from pathlib import Path

import typer

from floorline.render import console, print_json, progress, table


def register(app: typer.Typer) -> None:
    @app.command("report")
    def report(
        results: Path = typer.Option(Path("results"), "--results", help="root of results/<device>/"),
        html: Path = typer.Option(Path("report.html"), "--html", help="where to write the HTML report"),
        only: list[str] = typer.Option([], "--only", help="run only these sections (repeatable)"),
        quick: bool = typer.Option(False, "--quick", help="smaller sweeps"),
        json_out: bool = typer.Option(False, "--json", help="print JSON"),
    ) -> None:
        """Run every section this machine can run; write packets, report.html and a summary."""
        from rich.progress import SpinnerColumn, TextColumn, TimeElapsedColumn

        from floorline.report.html import render
        from floorline.report.runner import run_report

        with progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
                      disable=json_out) as prog:
            task = prog.add_task("report", total=None)
            out_dir, outcomes = run_report(results, only or None, quick,
                                           lambda m: prog.update(task, description=m))
        html.write_text(render(out_dir.name, outcomes))
        summary = [{"section": o.name, "status": o.status, "packets": [str(p) for p in o.result.packets],
                    "reason": o.reason} for o in outcomes]
        if json_out:
            print_json({"device": out_dir.name, "html": str(html), "sections": summary})
        else:
            table(f"floorline report: {out_dir.name}", ["section", "status", "packets", "why"],
                  [[o.title, o.status, len(o.result.packets), o.reason or ""] for o in outcomes])
            console.print(f"wrote {html}")
        if any(o.status in ("failed", "error") for o in outcomes):
            raise typer.Exit(1)
