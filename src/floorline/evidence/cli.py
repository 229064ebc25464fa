from __future__ import annotations

from pathlib import Path

import typer

from floorline.render import console, print_json, table

evidence_app = typer.Typer(help="Show, verify, tabulate and replay evidence packets.", no_args_is_help=True)


@evidence_app.command("show")
def show(file: Path, json_out: bool = typer.Option(False, "--json", help="print JSON")) -> None:
    """Print one packet."""
    from floorline.evidence.store import load_packet

    p = load_packet(file)
    if json_out:
        print_json(p.model_dump(mode="json"))
        return
    console.print(f"[bold]{p.kind}[/bold] {p.status}{' (' + p.failure_class + ')' if p.failure_class else ''}")
    console.print(f"id {p.id}\ncreated {p.created_at}\ncommand {' '.join(p.command)}")
    console.print(f"git {p.git.commit} dirty={p.git.dirty}")
    gpus = ", ".join(g.name for g in p.hardware.gpus) or "no GPU"
    console.print(f"hardware {p.hardware.gpu_count} x {gpus}; software torch {p.software.torch}, "
                  f"triton {p.software.triton}, CUDA {p.software.cuda}, NCCL {p.software.nccl}")
    if p.params:
        console.print(f"params {p.params}")
    if p.correctness:
        c = p.correctness
        console.print(f"correctness {c.metric}={c.value} tol={c.tolerance} passed={c.passed} vs {c.reference}")
    if p.timing:
        t = p.timing
        console.print(f"timing {t.method}: median {t.median:.4g} {t.unit} (p10 {t.p10:.4g}, p90 {t.p90:.4g}, "
                      f"n={t.iterations})")
    for b in p.baselines:
        console.print(f"baseline {b.name} {b.version or ''}: ratio {b.ratio} {b.status} {b.reason or ''}")
    if p.floor:
        console.print(f"floor {p.floor.model}: {p.floor.value} fraction {p.floor.fraction}")
    for n in p.notes:
        console.print(f"note: {n}")


@evidence_app.command("verify")
def verify(files: list[Path], json_out: bool = typer.Option(False, "--json", help="print JSON")) -> None:
    """Check schema, id and artifact hashes; exit 1 naming the first mismatch."""
    from floorline.errors import EvidenceMismatch
    from floorline.evidence.store import owning_packet, read_json, verify_packet

    results, failed = [], []
    for f in files:
        data = read_json(f)  # missing file or malformed JSON is bad input (exit 2)
        try:
            owner = owning_packet(f) if isinstance(data, dict) and "schema_version" not in data else None
            if owner is not None:  # a JSON artifact: it verifies when the packet that hashes it does
                verify_packet(owner)
                results.append({"file": str(f), "ok": True, "artifact_of": str(owner)})
                continue
            verify_packet(f)
            results.append({"file": str(f), "ok": True})
        except EvidenceMismatch as e:
            results.append({"file": str(f), "ok": False, "error": str(e)})
            failed.append(str(e))
    if json_out:
        print_json(results)
    else:
        for r in results:
            console.print(f"{'ok  ' if r['ok'] else 'FAIL'} {r['file']}" + ("" if r["ok"] else f": {r['error']}"))
    if failed:
        raise EvidenceMismatch(failed[0] + (f" (and {len(failed) - 1} more)" if len(failed) > 1 else ""))


@evidence_app.command("table")
def table_cmd(
    directory: Path = typer.Argument(Path("results")),
    markdown: bool = typer.Option(False, "--markdown", help="print a Markdown table"),
    json_out: bool = typer.Option(False, "--json", help="print JSON"),
) -> None:
    """Tabulate every packet under DIR."""
    from dataclasses import asdict

    from floorline.evidence.table import HEADERS, build_rows
    from floorline.evidence.table import markdown as md

    rows = build_rows(directory)
    if json_out:
        print_json([asdict(r) for r in rows])
    elif markdown:
        print(md(rows))
    else:
        table(f"evidence under {directory}", HEADERS,
              [[r.device, r.kind, r.params, r.status, r.time, r.floor, r.baselines] for r in rows])


@evidence_app.command("replay")
def replay_cmd(file: Path, json_out: bool = typer.Option(False, "--json", help="print JSON")) -> None:
    """Re-run the packet's command here and print old vs new and the ratio."""
    from floorline.evidence.replay import replay

    r = replay(file)
    old_t = r.old.timing.median if r.old.timing else None
    new_t = r.new.timing.median if r.new and r.new.timing else None
    out = {"returncode": r.returncode, "kind": r.old.kind, "old_median": old_t, "new_median": new_t,
           "unit": r.old.timing.unit if r.old.timing else None, "new_over_old": r.ratio,
           "old_status": r.old.status, "new_status": r.new.status if r.new else None}
    if json_out:
        print_json(out)
    else:
        table(f"replay of {file}", ["", "old", "new"],
              [["status", r.old.status, out["new_status"]], ["median", old_t, new_t],
               ["new/old", "", f"{r.ratio:.3f}" if r.ratio else "-"]])
    if r.returncode != 0 or r.new is None:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.add_typer(evidence_app, name="evidence")


@evidence_app.command("schema")
def schema_cmd(write: Path = typer.Option(None, "--write", help="write the JSON Schema to this file")) -> None:
    """Print (or write) the JSON Schema of floorline.evidence/1."""
    import json

    from floorline.evidence.schema import json_schema

    text = json.dumps(json_schema(), indent=2, sort_keys=True) + "\n"
    if write:
        write.write_text(text)
    else:
        print(text, end="")


@evidence_app.command("targets")
def targets_cmd(
    directory: Path = typer.Argument(Path("results")),
    targets: Path = typer.Option(Path("docs/targets.toml"), "--targets", help="the targets file"),
    markdown: bool = typer.Option(False, "--markdown", help="print a Markdown table"),
    json_out: bool = typer.Option(False, "--json", help="print JSON"),
) -> None:
    """Each issue's targets next to the latest committed measurement that speaks to it."""
    from floorline.evidence.targets import evaluate, load_targets
    from floorline.evidence.targets import markdown as md

    res = evaluate(load_targets(targets), directory)
    if json_out:
        print_json([{"issue": r.target.issue, "title": r.target.title, "metric": r.target.metric,
                     "op": r.target.op, "target": r.target.value, "measured": r.measured, "met": r.met,
                     "file": r.file} for r in res])
    elif markdown:
        print(md(res))
    else:
        table("targets", ["issue", "target", "measured", "met", "packet"],
              [[r.target.issue, r.target.title, "-" if r.measured is None else f"{r.measured:.4g}",
                "not run" if r.met is None else ("yes" if r.met else "no"), r.file or "-"] for r in res])
