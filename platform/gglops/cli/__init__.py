"""`gglops` command line: typer + rich. The CLI only parses and calls.

Each command group lives in its own module and imports its heavy dependencies (torch, ray,
mlflow) inside the command body, so `gglops --help` stays fast.
"""

from __future__ import annotations

import logging
import os
import sys
from contextlib import suppress
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from gglops.cli import (
    data,
    evaluate,
    predict,
    promote,
    register,
    release,
    report,
    serve,
    stack,
    submit,
    summary,
    train,
    tune,
)
from gglops.core.errors import GGLOpsError

app = typer.Typer(
    name="gglops",
    help="GGLOps: train, tune, register and ship GGL-Net infrared small target detectors.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
for _module in (
    data,
    train,
    tune,
    evaluate,
    register,
    promote,
    release,
    predict,
    report,
    stack,
    submit,
    summary,
    serve,
):
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
    quiet: Annotated[
        bool,
        typer.Option("--quiet", "-q", help="Only warnings, errors and the result: no epoch lines."),
    ] = False,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Debug lines too (GGLOPS_LOG_LEVEL=DEBUG).")
    ] = False,
) -> None:
    """GGLOps: train, tune, register and ship GGL-Net infrared small target detectors."""
    if quiet and verbose:
        raise typer.BadParameter("--quiet and --verbose exclude each other")
    if quiet or verbose:
        _set_level("WARNING" if quiet else "DEBUG")


def _set_level(name: str) -> None:
    """The `gglops` loggers at `name`, here and (through the environment) in the processes and
    Ray workers this command starts."""
    os.environ["GGLOPS_LOG_LEVEL"] = name
    os.environ["MLFLOW_LOGGING_LEVEL"] = "DEBUG" if name == "DEBUG" else "WARNING"
    logging.getLogger("gglops").setLevel(name)


# typer vendors click: its UsageError (bad option value, unknown command) is BadParameter's base.
_CLICK_USAGE_ERROR: type[typer.BadParameter] = typer.BadParameter.__mro__[1]

_stderr = Console(stderr=True, highlight=False)


def _ray_up() -> bool:
    ray = sys.modules.get("ray")  # never imported: nothing to leave
    return ray is not None and ray.is_initialized()


def _detach_ray() -> None:
    """Leave Ray before the last line: its log forwarding would otherwise print worker lines
    (Train's placement-group cleaner, say) after it, burying the message a user acts on."""
    if _ray_up():
        with suppress(Exception):  # the message matters more than a clean disconnect
            sys.modules["ray"].shutdown()


def _outcome() -> tuple[int, str | None]:
    """Run the command → (exit code, error line or None)."""
    try:
        result = app(standalone_mode=False)
    except GGLOpsError as exc:
        return exc.exit_code, escape(str(exc))
    except _CLICK_USAGE_ERROR as exc:
        return 2, escape(f"{exc.format_message()} (see --help)")
    except (typer.Abort, KeyboardInterrupt):
        return 130, "interrupted"
    except Exception as exc:  # a bug, not bad input: say so, keep the traceback on request
        if os.environ.get("GGLOPS_DEBUG"):
            raise
        name = type(exc).__name__
        return 1, escape(f"internal error: {name}: {exc} (GGLOPS_DEBUG=1 shows the traceback)")
    return (result if isinstance(result, int) else 0), None


class _StderrHandler(logging.Handler):
    """Writes to sys.stderr as it is at each record, not as it was at set-up: a caller that
    swaps it (pytest's capture, a tool embedding `main`) gets the lines, never a closed file."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            sys.stderr.write(f"{self.format(record)}\n")
            sys.stderr.flush()
        except Exception:  # logging's contract: a broken stream never stops the command
            self.handleError(record)


class _LevelFormatter(logging.Formatter):
    """Library records as the console's lines: info as it is, warnings and errors prefixed."""

    def format(self, record: logging.LogRecord) -> str:
        text = record.getMessage()
        return text if record.levelno < logging.WARNING else f"{record.levelname.lower()}: {text}"


def _configure_logging() -> None:
    """The `gglops` loggers to stderr at GGLOPS_LOG_LEVEL (default INFO)."""
    name = os.environ.get("GGLOPS_LOG_LEVEL", "INFO").upper()
    level = logging.getLevelName(name)
    if not isinstance(level, int):
        _stderr.print(f"[bold red]error:[/] GGLOPS_LOG_LEVEL={escape(name)}: not a log level")
        sys.exit(2)
    # MLflow's own switch for its INFO lines (system metrics started, model version waits):
    # read when mlflow is imported, here and in the Ray workers this process starts.
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING" if level > logging.DEBUG else name)
    if not sys.stderr.isatty():  # its download bars redraw with \r: noise in a log file
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    handler = _StderrHandler()
    handler.setFormatter(_LevelFormatter())
    logger = logging.getLogger("gglops")
    for old in [h for h in logger.handlers if isinstance(h, _StderrHandler)]:
        logger.removeHandler(old)  # `main` again in one process (tests): one line per record
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False


def main() -> None:
    """Entry point: GGLOps errors become one line and their exit code, never a traceback."""
    _configure_logging()
    ray_was_up = _ray_up()  # an embedding process's own Ray (the tests') is left alone
    code, error = _outcome()
    if error is not None:
        if not ray_was_up:
            _detach_ray()
        _stderr.print(f"[bold red]error:[/] {error}", markup=True, soft_wrap=True)
    sys.exit(code)
