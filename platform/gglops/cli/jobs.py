"""`gglops submit -- CMD...`: run a command as a Ray Job."""

from __future__ import annotations

from typing import Annotated

import typer


def submit(
    command: Annotated[list[str], typer.Argument(help="Command to run on the cluster.")],
    address: Annotated[
        str | None, typer.Option(help="Ray dashboard/Jobs URL (else GGLOPS_RAY_DASHBOARD_URL).")
    ] = None,
    no_wait: Annotated[bool, typer.Option("--no-wait", help="Submit and return.")] = False,
    forward_secrets: Annotated[
        bool,
        typer.Option(
            "--forward-secrets",
            help="Also ship this shell's credentials (*SECRET*, *TOKEN*, *PASSWORD*, "
            "*ACCESS_KEY*) in the job's runtime env: Ray logs them in clear on the cluster.",
        ),
    ] = False,
) -> int:
    """Submit CMD with this working dir and non-secret env; follow logs; return its exit code.

    Credentials come from the cluster (its pods' or head's env) unless --forward-secrets."""
    from gglops.jobs import submit_job
    from gglops.settings import load_settings

    return submit_job(
        command, load_settings(), address=address, follow=not no_wait,
        forward_secrets=forward_secrets,
    )  # fmt: skip


def register(app: typer.Typer) -> None:
    app.command("submit", context_settings={"allow_interspersed_args": False})(submit)
