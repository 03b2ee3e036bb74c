"""`gglops stack up|down|status|env`: the embedded local services."""

from __future__ import annotations

import shlex
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from devstack.core import Stack, UpResult

stack_app = typer.Typer(help="The embedded local stack: S3, MLflow, Ray.", no_args_is_help=True)

NoRay = Annotated[bool, typer.Option("--no-ray", help="Skip the local Ray head.")]
_console = Console(highlight=False)
_errors = Console(stderr=True, highlight=False)


def _stack() -> Stack:
    from devstack.core import Stack
    from gglops.core.settings import load_settings

    return Stack.from_settings(load_settings())


def _names(no_ray: bool) -> list[str]:
    return ["s3", "mlflow"] if no_ray else ["s3", "mlflow", "ray"]


def _up_line(result: UpResult) -> str:
    seconds = f"{result.seconds:5.1f} s" if result.action == "started" else ""
    return f"{result.name:<7} {result.action:<19} {result.url:<28} {seconds}".rstrip()


@contextmanager
def _waiting(names: list[str]) -> Iterator[Callable[[UpResult], None]]:
    """Prints each service's line as it becomes ready; on a terminal a spinner below names
    the ones still starting."""
    pending = list(names)
    status = _console.status(f"starting {', '.join(pending)}") if _console.is_terminal else None

    def ready(result: UpResult) -> None:
        _console.print(_up_line(result))
        pending.remove(result.name)
        if status is not None and pending:
            status.update(f"starting {', '.join(pending)}")

    if status is None:
        yield ready
        return
    with status:
        yield ready


@stack_app.command("up")
def up(no_ray: NoRay = False) -> None:
    """Start SeaweedFS S3, mlflow server and a Ray head (idempotent)."""
    from devstack.dvc import configure_local_remote

    stack, names = _stack(), _names(no_ray)
    with _waiting(names) as ready:
        stack.up(names, on_ready=ready)
    for note in stack.notes:
        _errors.print(note, soft_wrap=True)
    if configure_local_remote(Path.cwd(), stack):
        _console.print("DVC remote 'store': endpoint and keys written to .dvc/config.local")
    _console.print(f'State and logs in {stack.config.stack_dir}; eval "$(gglops stack env)"')


@stack_app.command("down")
def down() -> None:
    """Stop what `up` started (by pid file; other processes are left alone)."""
    stopped = _stack().down()
    _console.print(f"stopped: {', '.join(stopped)}" if stopped else "nothing of ours was running")


@stack_app.command("status")
def status(no_ray: NoRay = False) -> int:
    """Table of services, URLs and health; exit 0 only if all are healthy."""
    states = _stack().status(_names(no_ray))
    table = Table("service", "URL", "pid", "healthy")
    for s in states:
        pid = str(s.pid) if s.pid else ("-" if not s.healthy else "not ours")
        table.add_row(s.name, s.url, pid, "[green]yes[/]" if s.healthy else "[red]no[/]")
    _console.print(table)
    if not no_ray:
        from devstack.services import dashboard_login_hint, loose_token_mode
        from gglops.adapters.ray_auth import ray_token_path

        ray = next(s for s in states if s.name == "ray")
        _console.print(dashboard_login_hint(ray.url), soft_wrap=True)
        if (mode := loose_token_mode(ray_token_path())) is not None:
            _errors.print(
                f"warning: Ray token file {ray_token_path()} has mode {mode:04o} (readable by "
                "other users); `gglops stack up` or `chmod 600` makes it private",
                soft_wrap=True,
            )
    return 0 if all(s.healthy for s in states) else 1


@stack_app.command("env")
def env(no_ray: NoRay = False) -> None:
    """Print export lines (includes the local keys): eval "$(gglops stack env)"."""
    for name, value in _stack().env(with_ray=not no_ray).items():
        print(f"export {name}={shlex.quote(value)}")


def register(app: typer.Typer) -> None:
    app.add_typer(stack_app, name="stack")
