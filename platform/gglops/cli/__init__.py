"""`gglops` command line: typer + rich. The CLI only parses and calls.

Each command group lives in its own module and imports its heavy dependencies (torch, ray,
mlflow) inside the command body, so `gglops --help` stays fast.
"""

from __future__ import annotations

import os
import sys
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from gglops.cli import data, jobs, registry, serve, stack, summary, train, tune
from gglops.errors import GGLOpsError

app = typer.Typer(
    name="gglops",
    help="GGLOps: train, tune, register and ship GGL-Net infrared small target detectors.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
for _module in (data, train, tune, registry, stack, jobs, summary, serve):
    _module.register(app)


def _print_version(value: bool) -> None:
    if value:
        from gglops import __version__

        typer.echo(f"gglops {__version__}")
        raise typer.Exit()


@app.callback()
def _options(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_print_version, is_eager=True, help="Print the version"),
    ] = False,
) -> None:
    """GGLOps: train, tune, register and ship GGL-Net infrared small target detectors."""


# typer vendors click: its UsageError (bad option value, unknown command) is BadParameter's base.
_CLICK_USAGE_ERROR: type[typer.BadParameter] = typer.BadParameter.__mro__[1]

_stderr = Console(stderr=True, highlight=False)


def _fail(message: str, code: int) -> None:
    _stderr.print(f"[bold red]error:[/] {message}", markup=True, soft_wrap=True)
    sys.exit(code)


def main() -> None:
    """Entry point: GGLOps errors become one line and their exit code, never a traceback."""
    try:
        result = app(standalone_mode=False)
    except GGLOpsError as exc:
        _fail(escape(str(exc)), exc.exit_code)
    except _CLICK_USAGE_ERROR as exc:
        _fail(escape(f"{exc.format_message()} (see --help)"), 2)
    except (typer.Abort, KeyboardInterrupt):
        _fail("interrupted", 130)
    except Exception as exc:  # a bug, not bad input: say so, keep the traceback on request
        if os.environ.get("GGLOPS_DEBUG"):
            raise
        _fail(
            escape(
                f"internal error: {type(exc).__name__}: {exc} (GGLOPS_DEBUG=1 shows the traceback)"
            ),
            1,
        )
    sys.exit(result if isinstance(result, int) else 0)
