"""`gglops` command line: typer + rich. The CLI only parses and calls.

Each command group lives in its own module and imports its heavy dependencies (torch, ray,
mlflow) inside the command body, so `gglops --help` stays fast.
"""

from __future__ import annotations

import os
import sys

import typer
from rich.console import Console
from rich.markup import escape

from gglops.cli import data, jobs, registry, stack, summary, train, tune
from gglops.errors import GGLOpsError

app = typer.Typer(
    name="gglops",
    help="GGLOps: train, tune, register and ship GGL-Net infrared small target detectors.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
for _module in (data, train, tune, registry, stack, jobs, summary):
    _module.register(app)

# typer vendors click: its UsageError (bad option value, unknown command) is BadParameter's base.
_CLICK_USAGE_ERROR = typer.BadParameter.__mro__[1]

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
