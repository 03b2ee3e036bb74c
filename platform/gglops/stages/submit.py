"""`gglops submit`: run a command on a Ray cluster as a Ray Job, follow its logs, return its
exit code.

The job gets this checkout as its working dir (uploaded by Ray, minus the excludes below;
Ray refuses packages over its size limit, ~500 MiB, so data and outputs stay out) and the
non-secret GGLOPS_*/MLFLOW_*/AWS_* variables of this shell (endpoints, URIs, names). On the
local stack the head shares this machine's venv, so `python ...` works; a real cluster needs
an image with gglops installed.

Credentials come from the cluster, not from this shell: Ray's runtime-env agent logs every
runtime env it creates, env_vars in clear (runtime_env_agent.log), and the Jobs API returns
them to any non-browser client; Ray has no redaction for either. The local stack's head runs
with the stack's S3 keys, KubeRay/compose pods get theirs from a Secret/env. `forward_secrets`
ships this shell's secrets anyway (for a cluster that has none), with a warning.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shlex
import signal
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gglops.adapters.s3 import configured_keys
from gglops.core.errors import ServiceError, UsageError, first_line
from gglops.core.gitinfo import COMMIT_ENV, git_commit
from gglops.core.settings import Settings

log = logging.getLogger(__name__)

PASSED_PREFIXES = ("GGLOPS_", "MLFLOW_", "AWS_")
# A variable whose name holds one of these is a credential: it stays on this machine by default.
SECRET_MARKERS = ("SECRET", "TOKEN", "PASSWORD", "ACCESS_KEY", "CREDENTIAL")
# The job joins the cluster it runs on; our own shell's addresses mean nothing there.
CLUSTER_LOCAL = {"GGLOPS_RAY_ADDRESS": "auto"}
DROPPED = {"RAY_ADDRESS", "GGLOPS_RAY_DASHBOARD_URL", "GGLOPS_STACK_DIR"}
# .dvc/config.local holds the DVC remote's keys: the cluster has its own (see job_entry).
EXCLUDES = [
    ".git", ".venv", ".stack", ".dvc/cache", ".dvc/tmp", ".dvc/config.local", ".pytest_cache",
    ".ruff_cache", "__pycache__", "data", "outputs", "plots", "build", "*.egg-info",
]  # fmt: skip
EXIT_BY_STATUS = {"SUCCEEDED": 0, "FAILED": 1, "STOPPED": 130}
RAY_AGENT_LOG = "runtime_env_agent.log"


@dataclass(frozen=True)
class JobRequest:
    entrypoint: str
    working_dir: Path
    env_vars: dict[str, str]

    def runtime_env(self) -> dict[str, object]:
        return {"working_dir": str(self.working_dir), "excludes": EXCLUDES,
                "env_vars": self.env_vars}  # fmt: skip


def repo_root(start: Path) -> Path:
    """The checkout that holds `start` (the nearest folder with pyproject.toml or .git)."""
    for folder in (start, *start.parents):
        if (folder / "pyproject.toml").exists() or (folder / ".git").exists():
            return folder
    return start


@dataclass(frozen=True)
class JobEnv:
    """The variables shipped in the job's runtime env, and the secret names held back."""

    env_vars: dict[str, str]
    withheld: tuple[str, ...] = ()

    def secrets_shipped(self) -> list[str]:
        return sorted(name for name in self.env_vars if is_secret(name))


def is_secret(name: str) -> bool:
    return any(marker in name for marker in SECRET_MARKERS)


def job_env(
    settings: Settings, environ: Mapping[str, str], forward_secrets: bool = False
) -> JobEnv:
    """Ours by prefix; secrets (and the local stack's S3 keys) only with `forward_secrets`."""
    env = {k: v for k, v in environ.items() if k.startswith(PASSED_PREFIXES) and k not in DROPPED}
    if forward_secrets:
        keys = configured_keys(settings)
        if keys is not None:
            env.setdefault("AWS_ACCESS_KEY_ID", keys[0])
            env.setdefault("AWS_SECRET_ACCESS_KEY", keys[1])
        return JobEnv(env | CLUSTER_LOCAL)
    withheld = tuple(sorted(name for name in env if is_secret(name)))
    kept = {k: v for k, v in env.items() if k not in withheld}
    return JobEnv(kept | CLUSTER_LOCAL, withheld)


def jobs_address(settings: Settings, address: str | None) -> str:
    """--address, else GGLOPS_RAY_ADDRESS when it is a dashboard URL, else the dashboard."""
    if address:
        return address
    if settings.ray_address and settings.ray_address.startswith(("http://", "https://")):
        return settings.ray_address
    return settings.ray_dashboard_url


def _quiet_ray() -> None:
    """Ray's packaging chatter (INFO/WARNING per ignored file) is not the job's output; its
    loggers set their own levels, so filter at Ray's handler."""
    for handler in logging.getLogger("ray").handlers:
        handler.setLevel(logging.ERROR)


def _client(address: str):  # type: ignore[no-untyped-def]
    from ray.exceptions import AuthenticationError
    from ray.job_submission import JobSubmissionClient

    from gglops.adapters.ray_auth import ray_auth_headers

    try:
        # Ray's token (if any) sent explicitly: the client only does so in RAY_AUTH_MODE=token.
        return JobSubmissionClient(address, headers=ray_auth_headers())
    except (ConnectionError, RuntimeError, ValueError, AuthenticationError) as exc:
        reason = first_line(exc)
        raise ServiceError(f"Ray Jobs API at {address} unreachable: {reason}") from None


async def _follow(client, job_id: str) -> None:  # type: ignore[no-untyped-def]
    async for chunk in client.tail_job_logs(job_id):
        sys.stdout.write(chunk)
        sys.stdout.flush()


def _exit_code(client, job_id: str) -> int:  # type: ignore[no-untyped-def]
    info = client.get_job_info(job_id)
    if info.driver_exit_code is not None:
        return int(info.driver_exit_code)
    return EXIT_BY_STATUS.get(str(info.status), 1)


@dataclass(frozen=True)
class SubmittedJob:
    """A job Ray accepted, and the client that follows it."""

    job_id: str
    url: str
    env: JobEnv
    client: Any  # ray's JobSubmissionClient: ray is imported only when submitting

    @property
    def stop_hint(self) -> str:
        return f"ray job stop --address {self.url} {self.job_id}"


def submit_job(
    command: Sequence[str],
    settings: Settings,
    address: str | None = None,
    environ: Mapping[str, str] | None = None,
    forward_secrets: bool = False,
) -> SubmittedJob:
    """Submit `command` as a Ray Job; `follow_job` streams its logs and returns its exit code."""
    if not command:
        raise UsageError("submit: no command given (gglops submit -- CMD ...)")
    url = jobs_address(settings, address)
    root = repo_root(Path.cwd())
    # The upload has no .git: the job's lineage tags take the commit from here (a shell's own
    # GGLOPS_GIT_COMMIT wins).
    shell = {COMMIT_ENV: git_commit(root), **(os.environ if environ is None else environ)}
    env = job_env(settings, shell, forward_secrets)
    request = JobRequest(
        entrypoint=shlex.join(command),
        working_dir=root,
        env_vars=env.env_vars,
    )
    client = _client(url)
    _quiet_ray()
    job_id = client.submit_job(entrypoint=request.entrypoint, runtime_env=request.runtime_env())
    return SubmittedJob(job_id, url, env, client)


def follow_job(job: SubmittedJob) -> int:
    """Stream the job's logs to stdout; its exit code, or 130 after Ctrl-C (which stops it)."""
    return _follow_until_done(job.client, job.job_id, job.stop_hint)


def _follow_until_done(client, job_id: str, stop_hint: str) -> int:  # type: ignore[no-untyped-def]
    """Stream the job's logs; its exit code, or 130 after Ctrl-C, which stops the job."""
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        # A shell without job control starts `cmd &` with SIGINT ignored, and exec keeps it
        # ignored: neither Python nor asyncio.run installs a handler, so Ctrl-C (or kill -INT)
        # never reaches us and we follow the logs until the job ends. Respected, but said.
        note = "this process ignores SIGINT (started in the background?), so Ctrl-C will not"
        log.warning("%s stop %s; stop it with: %s", note, job_id, stop_hint)
    try:
        asyncio.run(_follow(client, job_id))
    except KeyboardInterrupt:
        return _stop(client, job_id, stop_hint)
    return _exit_code(client, job_id)


def _stop(client, job_id: str, stop_hint: str) -> int:  # type: ignore[no-untyped-def]
    """After Ctrl-C: ask Ray to stop the job; a failed or interrupted request is one line."""
    try:
        client.stop_job(job_id)
    except (Exception, KeyboardInterrupt) as exc:  # a second Ctrl-C while the request hangs
        reason = first_line(exc)
        log.warning("could not stop %s (%s); stop it with: %s", job_id, reason, stop_hint)
    else:
        log.info("stopped %s", job_id)
    return 130
