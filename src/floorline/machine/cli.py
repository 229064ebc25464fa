"""`floorline machine ...`: parse and render; the model lives in machine/checks.py and friends."""

from __future__ import annotations

import math

import typer

STATUS_STYLE = {"PASS": "green", "CONDITIONAL": "yellow", "FAIL": "bold red"}

SET_HELP = ("Override a constant, KEY=VALUE, repeatable. KEY is the design's TOML key (`floorline machine keys "
            "[DESIGN]` lists them with units and allowed ranges); VALUE is a number in the design's unit or "
            "'number unit', e.g. --set gpu.power=1500 --set 'cooling.tray_flow=20 L/min'.")
DESIGN_HELP = "A shipped design name (`floorline machine list`) or a path to your own .toml (default mx8-355)."


def _pct(m: float | None, digits: int = 1) -> str:
    if m is None or not math.isfinite(m):
        return "∞" if m == math.inf else "-∞" if m == -math.inf else "n/a"
    return f"{100 * m:+.{digits}f}%"


def _num(x: float) -> str:
    if not math.isfinite(x):
        return str(x)
    return f"{x:,.0f}" if abs(x) >= 1e4 else f"{x:.4g}"


def _load(design: str | None, sets: list[str] | None):
    from floorline.machine.design import parse_sets, resolve, with_overrides

    return with_overrides(resolve(design), parse_sets(sets or []))


def register(app: typer.Typer) -> None:
    m = typer.Typer(name="machine", no_args_is_help=True, add_completion=False,
                    help="Rebuild a serving tray or rack from one set of constants and check that it holds together.")
    app.add_typer(m, name="machine")

    @m.command("list")
    def list_cmd(json: bool = typer.Option(False, "--json", help="print JSON")) -> None:
        """The shipped designs and how their checks come out."""
        from floorline.machine.checks import evaluate
        from floorline.machine.design import DEFAULT_DESIGN, resolve, shipped
        from floorline.render import print_json, table

        rows = []
        for name in shipped():
            d = resolve(name)
            s = evaluate(d)["summary"]
            rows.append({"name": name, "title": d.title, "medium": d.medium, "default": name == DEFAULT_DESIGN, **s})
        if json:
            print_json({"designs": rows})
            return
        table("machine designs", ["name", "title", "cooling", "pass", "conditional", "fail"],
              [[r["name"] + (" (default)" if r["default"] else ""), r["title"], r["medium"], r["pass"],
                r["conditional"], r["fail"]] for r in rows])

    @m.command("keys")
    def keys_cmd(design: str = typer.Argument(None, help=DESIGN_HELP),
                 json: bool = typer.Option(False, "--json", help="print JSON")) -> None:
        """Every constant of a design: the keys --set takes, their units, confidence and allowed range."""
        from floorline.machine.schema import KEYS
        from floorline.render import print_json, table

        d = _load(design, None)
        rows = [{"key": k, "value": c.value, "unit": c.unit, "confidence": c.confidence,
                 "allowed": KEYS[k].allowed(), "source": c.source} for k, c in d.constants.items()]
        if json:
            print_json({"design": d.name, "keys": rows})
            return
        table(f"{d.name}: constants", ["key", "value", "unit", "confidence", "allowed"],
              [[r["key"], _num(r["value"]), r["unit"], r["confidence"], r["allowed"]] for r in rows])

    @m.command("check")
    def check_cmd(design: str = typer.Argument(None, help=DESIGN_HELP),
                  set_: list[str] = typer.Option(None, "--set", help=SET_HELP),
                  json: bool = typer.Option(False, "--json", help="print JSON")) -> None:
        """Run every check. Exit 0 with no FAIL, 1 on any FAIL, 2 on bad input."""
        from floorline.machine.checks import evaluate, public
        from floorline.render import console, print_json, table

        d = _load(design, set_)
        rep = public(evaluate(d))
        if json:
            print_json(rep)
        else:
            table(f"{d.title}", ["check", "value", "limit", "unit", "margin", "status"],
                  [[c["id"], _num(c["value"]), _num(c["limit"]), c["unit"], _pct(c["margin"]),
                    f"[{STATUS_STYLE[c['status']]}]{c['status']}[/]"] for c in rep["checks"]])
            for c in rep["checks"]:  # a PASS needs no words; the others say why
                if c["status"] != "PASS":
                    console.print(f"[{STATUS_STYLE[c['status']]}]{c['status']}[/] {c['id']}: {c['reason']}")
            s = rep["summary"]
            console.print(f"{len(rep['checks'])} checks: [green]{s['pass']} PASS[/], "
                          f"[yellow]{s['conditional']} CONDITIONAL[/], [red]{s['fail']} FAIL[/]")
        if rep["summary"]["fail"]:
            raise typer.Exit(1)

    @m.command("explain")
    def explain_cmd(check_id: str = typer.Argument(..., help="A check id, e.g. cooling.junction."),
                    design: str = typer.Argument(None, help=DESIGN_HELP),
                    set_: list[str] = typer.Option(None, "--set", help=SET_HELP),
                    json: bool = typer.Option(False, "--json", help="print JSON")) -> None:
        """One check: its formula, the inputs with their sources, and its margin."""
        from floorline.machine.explain import explain
        from floorline.render import console, print_json, table

        ex = explain(_load(design, set_), check_id)
        if json:
            print_json(ex)
            return
        c = ex["check"]
        console.print(f"[bold]{c['id']}[/] ({c['group']}): {c['title']}  on {ex['design']}")
        console.print(f"  formula: {ex['formula']}")
        console.print(f"  value {_num(c['value'])} {c['unit']}, limit {_num(c['limit'])} {c['unit']}, "
                      f"margin {_pct(c['margin'])}: [{STATUS_STYLE[c['status']]}]{c['status']}[/] ({c['reason']})")
        for dv in ex["derived"]:
            console.print(f"  {dv['name']} = {_num(dv['value'])} {dv['unit']}  ({dv['formula']})")
        table("inputs", ["key", "value", "unit", "confidence", "source"],
              [[i["key"], _num(i["value"]), i["unit"], i["confidence"], i["source"]] for i in ex["inputs"]])

    @m.command("sweep")
    def sweep_cmd(key: str = typer.Argument(..., help="The constant to vary (a TOML key, e.g. gpu.power)."),
                  start: str = typer.Argument(..., help="First value (design unit, or 'number unit')."),
                  stop: str = typer.Argument(..., help="Last value."),
                  design: str = typer.Argument(None, help=DESIGN_HELP),
                  steps: int = typer.Option(11, "--steps", help="Number of values from START to STOP (2-1000)."),
                  set_: list[str] = typer.Option(None, "--set", help=SET_HELP),
                  json: bool = typer.Option(False, "--json", help="print JSON")) -> None:
        """How every margin moves as one constant changes, and where the first check turns FAIL."""
        from floorline.machine.sweep import sweep
        from floorline.render import console, print_json, table

        res = sweep(_load(design, set_), key, start, stop, steps)
        if json:
            print_json(res)
            return
        vals = res["values"]
        idx = sorted({round(i * (len(vals) - 1) / 6) for i in range(7)})  # at most 7 columns fit a terminal
        rows, still = [], 0
        for cid, ms in res["margins"].items():
            if len({round(m, 9) if m is not None and math.isfinite(m) else m for m in ms}) == 1:
                still += 1  # a margin that does not move is not news
                continue
            sts = res["statuses"][cid]
            rows.append([cid, *[f"[{STATUS_STYLE[sts[i]]}]{_pct(ms[i], 0)}[/]" for i in idx]])
        table(f"{res['design']}: margin vs {key} ({res['unit']})", ["check", *[_num(vals[i]) for i in idx]], rows)
        console.print(f"{still} other checks do not move with {key}")
        f = res["first_fail"]
        unit = "" if res["unit"] in ("1", "") else f" {res['unit']}"
        also = f" (then {', '.join(f['also'])})" if f and f["also"] else ""
        if f is None:
            console.print(f"no check turns FAIL between {_num(vals[0])} and {_num(vals[-1])}{unit}")
        elif f["already_failing"]:
            console.print(f"[red]{f['check']} already FAILs at {key} = {_num(f['value'])}{unit}[/]{also}")
        else:
            console.print(f"first FAIL: [red]{f['check']}[/] at {key} ≈ {_num(f['value'])}{unit}{also}")

    @m.command("serve")
    def serve_cmd(host: str = typer.Option("127.0.0.1", "--host", help="Interface to listen on."),
                  port: int = typer.Option(8080, "--port", help="TCP port (1-65535).")) -> None:
        """The browser calculator: sliders on the main constants, every margin live."""
        from floorline.errors import InputError

        if not 1 <= port <= 65535:
            raise InputError(f"--port: must be an integer >= 1 and <= 65535, got {port}")
        import uvicorn

        from floorline.web.app import create_app

        print(f"floorline machine calculator on http://{host}:{port}/ (Ctrl-C to stop)")
        uvicorn.run(create_app(), host=host, port=port, log_level="warning")
