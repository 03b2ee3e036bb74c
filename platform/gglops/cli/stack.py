"""`gglops stack up|down|status|env`: the embedded local services."""

from __future__ import annotations

from typing import Annotated

import typer

stack_app = typer.Typer(help="The embedded local stack: S3, MLflow, Ray.", no_args_is_help=True)

NoRay = Annotated[bool, typer.Option("--no-ray", help="Skip the local Ray head.")]


@stack_app.command("up")
def up(no_ray: NoRay = False) -> None:
    """Start SeaweedFS S3, mlflow server and a Ray head (idempotent)."""
    from gglops.stack import stack_up

    stack_up(with_ray=not no_ray)


@stack_app.command("down")
def down() -> None:
    """Stop what `up` started."""
    from gglops.stack import stack_down

    stack_down()


@stack_app.command("status")
def status() -> int:
    """Table of services, URLs and health."""
    from gglops.stack import stack_status

    return stack_status()


@stack_app.command("env")
def env() -> None:
    """Print export lines: eval "$(gglops stack env)"."""
    from gglops.stack import stack_env

    print(stack_env())


def register(app: typer.Typer) -> None:
    app.add_typer(stack_app, name="stack")
