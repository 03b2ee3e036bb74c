"""`gglops submit -- CMD...`: run a command as a Ray Job; `gglops job run TARGET`: the
entrypoint such a job (or a KubeRay RayJob) runs on the cluster."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from gglops.stages.submit import SubmittedJob


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
    from gglops.core.settings import load_settings
    from gglops.stages.submit import follow_job, submit_job

    job = submit_job(command, load_settings(), address=address, forward_secrets=forward_secrets)
    _announce(job)
    return 0 if no_wait else follow_job(job)


def _announce(job: SubmittedJob) -> None:
    """On stderr (stdout is the job's log), names only, never values: what was shipped, what
    was held back, what is exposed."""
    from gglops.stages.submit import RAY_AGENT_LOG

    env = job.env
    typer.echo(f"submitted {job.job_id} to {job.url} (env: {', '.join(sorted(env.env_vars))})",
               err=True)  # fmt: skip
    if env.withheld:
        typer.echo(f"not shipped (the cluster provides credentials; --forward-secrets ships "
                   f"them): {', '.join(env.withheld)}", err=True)  # fmt: skip
    if shipped := env.secrets_shipped():
        typer.echo(f"warning: --forward-secrets: {', '.join(shipped)} travel in the runtime env; "
                   f"Ray logs it in clear on the cluster ({RAY_AGENT_LOG}) and its Jobs API "
                   "returns it", err=True)  # fmt: skip


def job_run(
    target: Annotated[str, typer.Argument(help="dvc.yaml stage to reproduce (and what it needs).")],
    workdir: Annotated[
        Path, typer.Option(help="The pipeline's working dir (dvc.yaml, .dvc/config, dvc.lock).")
    ] = Path(),
) -> int:
    """On the cluster: dvc pull the data, dvc repro TARGET, push outputs and results to S3.

    Runs, registry: MLflow; cached outputs: the DVC remote; small results (dvc.lock, params,
    metrics, JSON): s3://<bucket>/jobs/<job id>/; checkpoints: GGLOPS_STORAGE_PATH (S3)."""
    from gglops.core.settings import load_settings
    from gglops.stages.job_entry import RESULTS_PREFIX, run_cluster_job, summary_lines

    settings = load_settings()
    outcome = run_cluster_job(target, workdir, settings)
    prefix = f"s3://{settings.s3_bucket}/{RESULTS_PREFIX}/{outcome.job_id}/"
    for line in summary_lines(outcome, prefix):
        print(line, flush=True)
    return outcome.exit_code


def register(app: typer.Typer) -> None:
    app.command("submit", context_settings={"allow_interspersed_args": False})(submit)
    job = typer.Typer(help="Entrypoints that run on a Ray cluster.", no_args_is_help=True)
    job.command("run")(job_run)
    app.add_typer(job, name="job")
