"""`floorline kernelenv`: list tasks, judge one candidate, or serve the OpenEnv environment."""

from __future__ import annotations

from pathlib import Path

import typer

from floorline.errors import InputError
from floorline.render import console, err_console, print_json, progress, table


def _out_dir(out: Path | None, no_evidence: bool) -> Path | None:
    if no_evidence:
        return None
    if out is not None:
        return out
    from floorline.gpu.probe import device_slug

    return Path("results") / device_slug() / "kernelenv"


def register(app: typer.Typer) -> None:
    ke = typer.Typer(help="An OpenEnv RL environment for kernel optimisation, with a hardened harness.",
                     no_args_is_help=True)
    app.add_typer(ke, name="kernelenv")

    @ke.command("tasks")
    def tasks(directory: Path | None = typer.Option(None, "--dir", help="a directory of KernelBench-format task files"),
              json_out: bool = typer.Option(False, "--json", help="print JSON")) -> None:
        """The task suite: name, op, default and held-out shapes, forbidden ops."""
        from floorline.kernelenv.task import TASKS_DIR, load_tasks

        ts = load_tasks(directory or TASKS_DIR)
        rows = [{"name": t.name, "op": t.op, "doc": t.doc, "path": str(t.path),
                 "heldout_shapes": t.shapes("cuda")[1], "forbidden_ops": t.forbidden_ops(),
                 "tolerance": t.tolerance(), "baseline": "Baseline" if hasattr(t.module, "Baseline") else "Model"}
                for t in ts]
        if json_out:
            print_json(rows)
            return
        table(f"{len(rows)} tasks in {directory or TASKS_DIR}", ["task", "op", "held-out shapes", "forbidden ops", "baseline"],
              [[r["name"], r["op"], len(r["heldout_shapes"]), len(r["forbidden_ops"]), r["baseline"]] for r in rows])

    @ke.command("eval")
    def eval_(task: str = typer.Argument(..., help="task file (KernelBench format) or shipped task name"),
              candidate: Path = typer.Argument(..., help="candidate .py defining class ModelNew"),
              json_out: bool = typer.Option(False, "--json", help="print JSON"),
              out: Path | None = typer.Option(None, "--out", help="evidence directory (default results/<device>/kernelenv)"),
              no_evidence: bool = typer.Option(False, "--no-evidence", help="do not write the evidence packet"),
              seed: int | None = typer.Option(None, "--seed", min=0, help="replay an attempt's inputs (from its packet)"),
              no_timing: bool = typer.Option(False, "--no-timing", help="correctness and anti-hack checks only"),
              device: str | None = typer.Option(None, "--device", help="cuda or cpu (default: cuda if present)")) -> None:
        """Judge one candidate against one task: one attempt, one evidence packet."""
        from floorline.gpu.probe import cuda_available
        from floorline.kernelenv.evidence import run_attempt
        from floorline.kernelenv.harness import Harness, HarnessConfig
        from floorline.kernelenv.task import resolve_task

        if not candidate.is_file():
            raise InputError(f"candidate {candidate}: no such file")
        if candidate.suffix != ".py":
            raise InputError(f"candidate {candidate}: must be a .py file defining class ModelNew")
        dev = device or ("cuda" if cuda_available() else "cpu")
        if dev not in ("cuda", "cpu"):
            raise InputError(f"--device: must be cuda or cpu, got {dev!r}")
        if dev == "cuda" and not cuda_available():
            raise InputError("--device: cuda requested but no CUDA GPU is visible")
        t = resolve_task(task)
        source = candidate.read_text()
        h = Harness(HarnessConfig.for_device(dev, timing=not no_timing))
        with err_console.status(f"judging {candidate.name} on {t.name} ({dev})", spinner="dots") if not json_out else _null():
            att, path = run_attempt(h, t, source, _out_dir(out, no_evidence), seed=seed)
        result = {**att.summary(), "message": att.message, "sol_fraction": att.sol_fraction,
                  "median_us": att.timing["median"] if att.timing else None,
                  "timing_method": att.timing["method"] if att.timing else None}
        if json_out:
            print_json(result)
        else:
            table(f"{t.name}: {candidate.name}", ["field", "value"], [[k, v] for k, v in result.items()])
        if att.status != "passed":
            raise typer.Exit(1)

    @ke.command("suite")
    def suite(candidates: Path | None = typer.Option(None, "--candidates", help="directory of <task>.py candidates "
                                                        "(default: the shipped honest candidates)"),
              directory: Path | None = typer.Option(None, "--dir", help="a directory of task files"),
              json_out: bool = typer.Option(False, "--json", help="print JSON"),
              out: Path | None = typer.Option(None, "--out", help="evidence directory (default results/<device>/kernelenv)"),
              no_timing: bool = typer.Option(False, "--no-timing", help="correctness and anti-hack checks only")) -> None:
        """Judge a candidate for every task that has one: one attempt and one packet each."""

        from floorline.gpu.probe import cuda_available
        from floorline.kernelenv.evidence import run_attempt
        from floorline.kernelenv.harness import Harness, HarnessConfig
        from floorline.kernelenv.task import TASKS_DIR, load_tasks

        cdir = candidates or TASKS_DIR.parent / "candidates"
        if not cdir.is_dir():
            raise InputError(f"--candidates {cdir}: no such directory")
        pairs = [(t, cdir / f"{t.name}.py") for t in load_tasks(directory or TASKS_DIR) if (cdir / f"{t.name}.py").is_file()]
        if not pairs:
            raise InputError(f"--candidates {cdir}: holds no <task>.py for any task")
        dev = "cuda" if cuda_available() else "cpu"
        h = Harness(HarnessConfig.for_device(dev, timing=not no_timing))
        rows = []
        with progress(disable=json_out) as prog:
            bar = prog.add_task("kernelenv suite", total=len(pairs))
            for t, c in pairs:
                prog.update(bar, description=f"{t.name} ({dev})")
                att, _ = run_attempt(h, t, c.read_text(), _out_dir(out, False))
                rows.append({"task": t.name, "candidate": str(c), **att.summary(), "message": att.message,
                             "median_us": att.timing["median"] if att.timing else None,
                             "baseline_us": (att.baseline or {}).get("median"), "sol_fraction": att.sol_fraction})
                prog.advance(bar)
        if json_out:
            print_json(rows)
        else:
            table(f"kernelenv suite: {cdir} on {dev}", ["task", "status", "class", "median us", "baseline us", "speedup",
                                                         "SOL", "reward"],
                  [[r["task"], r["status"], r["failure_class"] or "",
                    f"{r['median_us']:.2f}" if r["median_us"] else "", f"{r['baseline_us']:.2f}" if r["baseline_us"] else "",
                    f"{r['speedup']:.3g}" if r["speedup"] else "", f"{r['sol_fraction']:.3f}" if r["sol_fraction"] else "",
                    f"{r['reward']:.3f}"] for r in rows])
        if any(r["status"] != "passed" for r in rows):
            raise typer.Exit(1)

    @ke.command("serve")
    def serve(port: int = typer.Option(8000, "--port", min=1, max=65535, help="TCP port"),
              host: str = typer.Option("127.0.0.1", "--host", help="bind address"),
              out: Path | None = typer.Option(None, "--out", help="evidence directory (default results/<device>/kernelenv)"),
              directory: Path | None = typer.Option(None, "--dir", help="serve these task files instead of the suite")) -> None:
        """Serve the OpenEnv environment (HTTP /reset /step /state /schema, WebSocket /ws)."""
        try:
            import uvicorn

            from floorline.kernelenv.app import build_app
        except ImportError as e:
            raise InputError(f"kernelenv serve needs the kernelenv extra (pip install 'floorline[kernelenv]'): {e}") from None
        from floorline.kernelenv.task import TASKS_DIR

        app_ = build_app(directory or TASKS_DIR, _out_dir(out, False))
        console.print(f"kernelenv on http://{host}:{port}  (POST /reset, POST /step, GET /state, GET /schema)")
        uvicorn.run(app_, host=host, port=port, log_level="warning")


class _null:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *a: object) -> None:
        return None
