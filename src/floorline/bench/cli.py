"""`floorline bench ...`: each benchmark module adds its own subcommand through register(bench_app)."""

from __future__ import annotations

from importlib import import_module
from importlib.util import find_spec

import typer

bench_app = typer.Typer(help="Benchmarks against the floor and the peers, in one run.", no_args_is_help=True)

_BENCHES = (
    "floorline.bench.hbm_cli",
    "floorline.bench.attention_cli",
    "floorline.bench.allreduce_cli",
    "floorline.bench.decode_cli",
)


def register(app: typer.Typer) -> None:
    for mod in _BENCHES:
        if find_spec(mod) is not None:
            import_module(mod).register(bench_app)
    app.add_typer(bench_app, name="bench")
