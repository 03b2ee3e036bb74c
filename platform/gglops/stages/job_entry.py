"""`gglops job run TARGET`: one pipeline stage (and what it needs) as a cluster job.

A Ray Job or RayJob starts from the image (gglops installed) and a working dir that holds the
pipeline (dvc.yaml, params, .dvc/config, dvc.lock) but no data and no outputs. This
entrypoint fetches the versioned data from the DVC remote (`dvc pull`), runs `dvc repro
TARGET` (DVC runs the upstream stages whose outputs are missing or stale), then leaves every
output where it outlives the cluster: MLflow holds the runs and the registry, the DVC remote
the cached outputs (`dvc push`), and s3://<bucket>/jobs/<job id>/ the small results
(dvc.lock, params/best.yaml, outputs/**/*.json, metrics.json, plots). Ray checkpoints go to
GGLOPS_STORAGE_PATH, set to s3://<bucket>/ray when it names a local folder.

Credentials come from the node's env (the Secret on KubeRay, the local head's env): dvc-s3
and boto3 read AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY; nothing secret is written here.

Its `[gglops job]` lines are log records: `gglops job run` (the job's entrypoint) writes them
to stderr, which Ray's job supervisor merges with stdout into the job's log.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from gglops.core.errors import ServiceError, UsageError
from gglops.core.settings import Settings

log = logging.getLogger(__name__)

# Results that are not in DVC's cache (cache: false outs) and would die with the cluster.
RESULT_GLOBS = ("dvc.lock", "metrics.json", "params/*.yaml", "outputs/**/*.json",
                "outputs/**/*.csv", "outputs/**/*.png", "plots/**/*")  # fmt: skip
RAY_JOB_CONFIG = "RAY_JOB_CONFIG_JSON_ENV_VAR"  # set by Ray's job supervisor for the driver
RESULTS_PREFIX = "jobs"


@dataclass(frozen=True)
class JobOutcome:
    target: str
    job_id: str
    exit_code: int
    results: list[str] = field(default_factory=list)  # s3:// URIs
    seconds: dict[str, float] = field(default_factory=dict)


def job_id(environ: Mapping[str, str]) -> str:
    """The Ray Job's submission id (from the supervisor's job config), else a timestamp."""
    try:
        meta = json.loads(environ.get(RAY_JOB_CONFIG, "{}")).get("metadata") or {}
    except json.JSONDecodeError:
        meta = {}
    stamp = time.strftime("local-%Y%m%dT%H%M%SZ", time.gmtime())
    return str(meta.get("job_submission_id") or stamp)


def stage_env(settings: Settings, environ: Mapping[str, str]) -> dict[str, str]:
    """The stages' env: this interpreter's tools first on PATH; checkpoints on S3."""
    env = dict(environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    if not settings.storage_path.startswith("s3://"):
        # A local folder dies with the pod; the bucket does not.
        env["GGLOPS_STORAGE_PATH"] = f"s3://{settings.s3_bucket}/ray"
    return env


def _dvc_bin() -> str:
    dvc = Path(sys.executable).parent / "dvc"
    return str(dvc) if dvc.exists() else "dvc"


def _dvc(workdir: Path, env: Mapping[str, str], *args: str) -> str:
    """Run dvc; its output, or ServiceError with its last line (dvc never prints keys)."""
    done = subprocess.run([_dvc_bin(), *args], cwd=workdir, env=dict(env), text=True,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT)  # fmt: skip
    if done.returncode != 0:
        lines = [ln for ln in done.stdout.strip().splitlines() if ln.strip()]
        why = next((ln for ln in lines if ln.startswith("ERROR")), lines[-1] if lines else "")
        raise ServiceError(f"dvc {' '.join(args[:2])} failed in {workdir}: {why[:300]}")
    return done.stdout


def _repro(workdir: Path, env: Mapping[str, str], target: str) -> int:
    """`dvc repro TARGET`, its output streamed as the job's log; its exit code."""
    return subprocess.run([_dvc_bin(), "repro", target], cwd=workdir, env=dict(env)).returncode


def prepare_dvc(workdir: Path, settings: Settings, env: Mapping[str, str]) -> None:
    """A working dir without .git (Ray's upload, an image) runs DVC without SCM; the default
    remote's endpoint is the cluster's S3 (GGLOPS_S3_ENDPOINT_URL), in the local config only."""
    if not (workdir / "dvc.yaml").is_file() or not (workdir / ".dvc").is_dir():
        raise UsageError(f"{workdir}: not a DVC pipeline (dvc.yaml and .dvc/ are needed)")
    if not (workdir / ".git").exists():
        _dvc(workdir, env, "config", "--local", "core.no_scm", "true")
    remote = subprocess.run([_dvc_bin(), "remote", "default"], cwd=workdir, env=dict(env),
                            capture_output=True, text=True).stdout.strip()  # fmt: skip
    if not remote:
        raise UsageError(f"{workdir}/.dvc/config: no default DVC remote to pull the data from")
    if settings.s3_endpoint_url:
        _dvc(workdir, env, "remote", "modify", "--local", remote, "endpointurl",
             settings.s3_endpoint_url)  # fmt: skip


def upload_results(workdir: Path, settings: Settings, prefix: str) -> list[str]:
    """Every small result file to s3://<bucket>/<prefix>/<its path>; returns the URIs."""
    from gglops.adapters.s3 import ArtifactStore

    store = ArtifactStore(settings)
    files = sorted({p for g in RESULT_GLOBS for p in workdir.glob(g) if p.is_file()})
    uris = []
    for path in files:
        key = f"{prefix}/{path.relative_to(workdir).as_posix()}"
        store.put_file(key, path)
        uris.append(store.url(key))
    return uris


def _timed(seconds: dict[str, float], name: str, t0: float) -> None:
    seconds[name] = round(time.monotonic() - t0, 1)
    log.info("[gglops job] %s: %s s", name, seconds[name])


def run_cluster_job(
    target: str, workdir: Path, settings: Settings, environ: Mapping[str, str] | None = None
) -> JobOutcome:
    """dvc pull → dvc repro TARGET → dvc push + results to S3. Exit code: the repro's."""
    environ = os.environ if environ is None else environ
    workdir = workdir.resolve()
    env = stage_env(settings, environ)
    jid, seconds = job_id(environ), dict[str, float]()
    prepare_dvc(workdir, settings, env)
    t0 = time.monotonic()
    # Outputs of stages that have not run yet (no dvc.lock entry, or not pushed) are missing
    # by design: dvc repro makes them. Data that nothing can make makes repro fail, naming it.
    pulled = _dvc(workdir, env, "pull", "--with-deps", "--allow-missing", target)
    log.info("[gglops job] dvc pull: %s", (pulled.strip().splitlines() or ["nothing"])[-1])
    _timed(seconds, "dvc pull", t0)
    t0 = time.monotonic()
    code = _repro(workdir, env, target)
    _timed(seconds, "dvc repro", t0)
    if code != 0:
        return JobOutcome(target, jid, code, seconds=seconds)
    t0 = time.monotonic()
    _dvc(workdir, env, "push", "--with-deps", target)
    uris = upload_results(workdir, settings, f"{RESULTS_PREFIX}/{jid}")
    _timed(seconds, "dvc push + results", t0)
    return JobOutcome(target, jid, 0, uris, seconds)


def summary_lines(outcome: JobOutcome, prefix_uri: str) -> Sequence[str]:
    return [f"[gglops job] {outcome.target}: exit {outcome.exit_code} (job {outcome.job_id})",
            f"[gglops job] results: {prefix_uri} ({len(outcome.results)} files)"]  # fmt: skip
