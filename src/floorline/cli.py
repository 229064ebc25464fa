"""floorline's command line. Thin: parse, call into a package, render.

Each capability contributes its commands through a `register(app)` function in its own cli module,
listed once in _PLUGINS. Bad input anywhere ends as one line on stderr and exit code 2.
"""

from __future__ import annotations

import os
import sys
from importlib import import_module
from importlib.util import find_spec

import typer

from floorline.errors import EvidenceMismatch, InputError

try:  # typer >= 0.20 vendors click; older releases use the click package
    from typer._click import exceptions as click_exc
except ImportError:  # pragma: no cover
    from click import exceptions as click_exc

_PLUGINS = (
    "floorline.gpu.cli",
    "floorline.evidence.cli",
    "floorline.report.cli",
    "floorline.bench.cli",
    "floorline.machine.cli",
    "floorline.economics.cli",
    "floorline.replay.cli",
    "floorline.model.cli",
    "floorline.kernelenv.cli",
)

app = typer.Typer(
    name="floorline",
    help="LLM decode near the hardware floor, and evidence for every number it prints.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

for _mod in _PLUGINS:
    if find_spec(_mod) is not None:
        import_module(_mod).register(app)


def _fail(msg: str, code: int) -> None:
    print(f"floorline: error: {msg}", file=sys.stderr)
    sys.exit(code)


def main(argv: list[str] | None = None) -> None:
    command = typer.main.get_command(app)
    try:
        rc = command.main(args=argv, prog_name="floorline", standalone_mode=False)
    except click_exc.NoArgsIsHelpError:
        sys.exit(2)  # the help text is already printed
    except click_exc.UsageError as e:
        _fail(e.format_message().splitlines()[0], 2)
    except typer.Abort:
        _fail("aborted", 130)
    except InputError as e:
        _fail(str(e).splitlines()[0], 2)
    except EvidenceMismatch as e:
        _fail(str(e), 1)
    except typer.Exit as e:
        sys.exit(e.exit_code)
    except (BrokenPipeError, KeyboardInterrupt):
        sys.exit(130)
    except Exception as e:
        if os.environ.get("FLOORLINE_DEBUG"):
            raise
        _fail(f"{type(e).__name__}: {e} (set FLOORLINE_DEBUG=1 for the traceback)", 1)
    sys.exit(rc if isinstance(rc, int) else 0)
