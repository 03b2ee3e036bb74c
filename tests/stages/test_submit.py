"""`gglops submit` against a real local Ray head (the `ray_head` fixture)."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from devstack.config import free_port

ROOT = Path(__file__).resolve().parents[2]
GGLOPS = [sys.executable, "-m", "gglops"]
SENTINEL = "sentinel-9f3b2c71d0"

DIGEST = hashlib.sha256(SENTINEL.encode()).hexdigest()
# The job proves it got the secret by its digest: the command line must not hold it either.
JOB = (
    "import hashlib, os, sys; print('hello from the job'); "
    "s = os.environ.get('GGLOPS_TEST_SENTINEL', '').encode(); "
    "print('sentinel digest:', hashlib.sha256(s).hexdigest()); sys.exit(3)"
)


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GGLOPS_", "RAY_ADDRESS"))}
    return env | extra


def test_submit_returns_exit_code_and_logs_without_leaking_secrets(ray_head, reliability) -> None:
    t0 = time.monotonic()
    done = subprocess.run(
        [*GGLOPS, "submit", "--address", ray_head.dashboard_url, "--", sys.executable, "-c", JOB],
        cwd=ROOT,
        env=_env(GGLOPS_TEST_SENTINEL=SENTINEL),
        capture_output=True,
        text=True,
        timeout=180,
    )
    seconds = time.monotonic() - t0
    assert done.returncode == 3, done.stderr[-2000:]
    assert "hello from the job" in done.stdout
    assert (
        f"sentinel digest: {DIGEST}" in done.stdout
    )  # passed to the job through the runtime env ...
    assert SENTINEL not in done.stdout + done.stderr  # ... never printed by gglops
    assert "GGLOPS_TEST_SENTINEL" in done.stderr  # the names are
    print(f"jobs round trip: {seconds:.1f} s")


def test_submit_to_unreachable_address_is_one_line_exit_2(reliability) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    done = subprocess.run(
        [*GGLOPS, "submit", "--address", url, "--", "true"],
        cwd=ROOT,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert url in done.stderr and "Traceback" not in done.stderr
    reliability("Ray Jobs address unreachable", f"exit {done.returncode}; {done.stderr.strip()}")


@contextmanager
def _sigint_in_children(handler: Callable | int) -> Iterator[None]:
    """Children started inside inherit SIGINT as default (`handler` a function: exec resets a
    handler to the default) or ignored (`signal.SIG_IGN`: exec keeps that)."""
    old = signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)


def _ignores_sigint(pid: int) -> bool:
    status = Path(f"/proc/{pid}/status").read_text()
    ignored = int(next(ln for ln in status.splitlines() if ln.startswith("SigIgn:")).split()[1], 16)
    return bool(ignored >> (signal.SIGINT - 1) & 1)


def _submit_sleeper(url: str) -> subprocess.Popen:
    job = "import time; print('started', flush=True); time.sleep(300)"
    return subprocess.Popen(
        [*GGLOPS, "submit", "--address", url, "--", sys.executable, "-c", job],
        cwd=ROOT, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def _wait_started(proc: subprocess.Popen) -> None:
    assert proc.stdout is not None
    for line in proc.stdout:  # wait until the job itself runs
        if "started" in line:
            return


@pytest.mark.timeout(240)
def test_ctrl_c_stops_the_job(ray_head, reliability) -> None:
    from ray.job_submission import JobSubmissionClient

    from gglops.adapters.ray_auth import ray_auth_headers

    # A terminal's Ctrl-C goes to a foreground process, whose SIGINT is at its default. This
    # pytest may ignore SIGINT itself (started as `cmd &` by a shell without job control) and
    # would hand that on: submit then never saw the signal and followed the job for 300 s.
    inherited = "ignored" if _ignores_sigint(os.getpid()) else "default"
    with _sigint_in_children(signal.default_int_handler):
        proc = _submit_sleeper(ray_head.dashboard_url)
    try:
        assert not _ignores_sigint(proc.pid)
        _wait_started(proc)
        proc.send_signal(signal.SIGINT)
        t0 = time.monotonic()
        rc = proc.wait(timeout=60)
        seconds = time.monotonic() - t0
    finally:
        proc.kill()  # no-op once it exited; a failing run must not leave a follower behind
    stderr = proc.stderr.read() if proc.stderr else ""
    assert rc == 130, stderr[-2000:]
    job_id = stderr.split("submitted ", 1)[1].split()[0]
    assert f"stopped {job_id}" in stderr and "ignores SIGINT" not in stderr, stderr[-2000:]
    client = JobSubmissionClient(ray_head.dashboard_url, headers=ray_auth_headers())
    deadline = time.monotonic() + 60
    while str(client.get_job_status(job_id)) != "STOPPED" and time.monotonic() < deadline:
        time.sleep(0.5)
    assert str(client.get_job_status(job_id)) == "STOPPED"
    reliability(
        "Ctrl-C during `gglops submit`",
        f"exit {rc} {seconds:.1f} s after SIGINT (pytest's own SIGINT: {inherited}, the "
        f"child's: default); Ray job {job_id} STOPPED",
    )


def test_submit_started_with_sigint_ignored_says_how_to_stop_the_job(ray_head) -> None:
    """`bash -c 'gglops submit ... &'`: SIGINT stays ignored (as the shell wants), and submit
    says that Ctrl-C will not stop the job and how to stop it."""
    with _sigint_in_children(signal.SIG_IGN):
        done = subprocess.run(
            [*GGLOPS, "submit", "--address", ray_head.dashboard_url, "--", "true"],
            cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=180,
        )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    job_id = done.stderr.split("submitted ", 1)[1].split()[0]
    hint = f"stop it with: ray job stop --address {ray_head.dashboard_url} {job_id}"
    assert "warning: this process ignores SIGINT" in done.stderr and hint in done.stderr


def test_submit_ships_no_secret_unless_asked(tmp_path: Path) -> None:
    from gglops.core.settings import Settings
    from gglops.stages.submit import job_env

    shell = {
        "GGLOPS_S3_ENDPOINT_URL": "http://s3.example:9000",
        "GGLOPS_AWS_SECRET_ACCESS_KEY": SENTINEL,
        "GGLOPS_MLFLOW_TRACKING_TOKEN": SENTINEL,
        "MLFLOW_TRACKING_PASSWORD": SENTINEL,
        "AWS_ACCESS_KEY_ID": "id",
        "AWS_SESSION_TOKEN": SENTINEL,
        "HOME": "/home/someone",
    }
    settings = Settings(stack_dir=tmp_path)  # no local stack keys to add
    default = job_env(settings, shell)
    assert set(default.env_vars) == {"GGLOPS_S3_ENDPOINT_URL", "GGLOPS_RAY_ADDRESS"}
    assert SENTINEL not in default.env_vars.values()
    assert len(default.withheld) == 5 and default.secrets_shipped() == []
    forwarded = job_env(settings, shell, forward_secrets=True)
    assert forwarded.secrets_shipped() == sorted(default.withheld)
    assert forwarded.withheld == ()


def test_a_failed_stop_request_is_one_line_naming_the_way_out(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A dashboard that fails (or a second Ctrl-C during) the stop request: exit 130 anyway,
    one warning saying the job may still run and how to stop it."""
    from gglops.stages import submit as jobs

    class Refusing:
        def stop_job(self, job_id: str) -> bool:
            raise RuntimeError("Failed to get head node agent within 10 seconds\nTraceback ...")

    with caplog.at_level(logging.INFO, logger="gglops"):
        stop = "ray job stop --address URL raysubmit_x"
        assert jobs._stop(Refusing(), "raysubmit_x", stop) == 130
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [(
        "WARNING",
        "could not stop raysubmit_x (Failed to get head node agent within 10 seconds); "
        "stop it with: ray job stop --address URL raysubmit_x",
    )]  # fmt: skip


# --- the pipeline as a cluster job, from a clean clone -------------------------------------

# What a clone needs to run the pipeline (dvc.yaml's deps): no tests, docs or benchmarks.
CLONED = ("pyproject.toml", "README.md", "dvc.yaml", "params.yaml", ".gitignore", ".dvcignore",
          ".dvc", "platform", "models")  # fmt: skip
# Never copied: caches, DVC's local state and keys.
LOCAL_ONLY = shutil.ignore_patterns("__pycache__", "*.egg-info", "cache", "tmp", "config.local")
# Tiny data and model, 1 epoch, 1 tune trial: the chain, not the learning, is under test.
CLUSTER_PARAMS = {
    "synth": {"n": 16, "size": 32},
    "data": {"image_size": 32},
    "model": {"width_mult": 0.25},
    "train": {"epochs": 1, "batch_size": 4, "augment": {"p": 0.0}, "run_name": "cluster-job"},
    "tune": {"samples": 1, "epochs": 1, "grace_period": 1, "cpus_per_worker": 1.0},
}


def _git(repo: Path, *args: str) -> str:
    who = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t"}  # fmt: skip
    done = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True,
                          check=True, env=_env(**who))  # fmt: skip
    return done.stdout.strip()


def _deep_merge(base: dict, extra: dict) -> dict:
    return {**base, **{k: _deep_merge(base.get(k, {}), v) if isinstance(v, dict) else v
                       for k, v in extra.items()}}  # fmt: skip


def _origin_with_pushed_data(stack, tmp_path: Path, prefix: str) -> Path:
    """A repo of this checkout's pipeline at tiny params, its data made, pushed to the stack's
    S3 and committed with dvc.lock: what a user has before going to the cluster."""
    import yaml

    from devstack.dvc import configure_local_remote

    origin = tmp_path / "origin"
    for name in CLONED:
        src, dst = ROOT / name, origin / name
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(src, dst, ignore=LOCAL_ONLY)
        else:
            shutil.copy2(src, dst)
    params = _deep_merge(yaml.safe_load((origin / "params.yaml").read_text()), CLUSTER_PARAMS)
    (origin / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    _git(origin, "init", "-q")
    dvc = str(Path(sys.executable).parent / "dvc")
    env = _env(PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    run = lambda *a: subprocess.run([dvc, *a], cwd=origin, env=env, check=True,  # noqa: E731
                                    capture_output=True, timeout=180)  # fmt: skip
    run("remote", "modify", "store", "url", f"s3://{stack.bucket}/{prefix}")
    assert configure_local_remote(origin, stack.handle)  # keys in the gitignored config.local
    run("repro", "synth")
    run("push")
    _git(origin, "add", "-A")
    _git(origin, "commit", "-q", "-m", "pipeline at tiny params, data pushed")
    return origin


@pytest.mark.integration
@pytest.mark.timeout(420)
def test_clean_clone_runs_the_pipeline_as_a_cluster_job(stack, ray_head, tmp_path: Path) -> None:
    """`gglops submit -- gglops job run register` from a clone with no data and no outputs:
    the job pulls the data from the stack's S3, tunes, trains, evaluates and registers; the
    version's lineage is the clone's commit and data."""
    from mlflow.tracking import MlflowClient

    from gglops.data.manifest import build_manifest

    tag = uuid.uuid4().hex[:8]
    origin = _origin_with_pushed_data(stack, tmp_path, f"dvc-cluster-{tag}")
    data = origin / "data/raw/synthetic-sirst"
    data_hash = build_manifest(data, "nuaa-sirst", "idx_427").data_hash
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(origin), str(clone)], check=True)
    assert not (clone / "data").exists() and not (clone / "outputs").exists()
    commit = _git(clone, "rev-parse", "HEAD")

    model = f"gglnet-cluster-{tag}"
    env = _env(**{k: v for k, v in stack.env.items() if k != "GGLOPS_STACK_DIR"},
               GGLOPS_REGISTERED_MODEL=model)  # fmt: skip
    t0 = time.monotonic()
    done = subprocess.run(
        [*GGLOPS, "submit", "--address", ray_head.dashboard_url, "--",
         sys.executable, "-m", "gglops", "job", "run", "register"],
        cwd=clone, env=env, capture_output=True, text=True, timeout=400,
    )  # fmt: skip
    seconds = time.monotonic() - t0
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    job_id = done.stderr.split("submitted ", 1)[1].split()[0]
    # The data came from the remote (synth did not run again), every later stage ran.
    pull = next(ln for ln in done.stdout.splitlines() if ln.startswith("[gglops job] dvc pull:"))
    assert "fetched" in pull, pull
    assert "Running stage 'synth'" not in done.stdout
    assert all(f"Running stage '{s}'" in done.stdout for s in ("tune", "train", "register"))
    assert stack.secret_key not in done.stdout + done.stderr
    assert "GGLOPS_GIT_COMMIT" in done.stderr and "AWS_SECRET_ACCESS_KEY" in done.stderr

    # Results outlive the cluster: on S3 under jobs/<job id>/, the model in the DVC remote.
    s3 = stack.s3_client()
    prefix = f"jobs/{job_id}/"
    keys = {o["Key"][len(prefix) :] for o in
            s3.list_objects_v2(Bucket=stack.bucket, Prefix=prefix).get("Contents", [])}  # fmt: skip
    assert {"dvc.lock", "metrics.json", "params/best.yaml", "outputs/train/result.json",
            "outputs/registry/candidate.json"} <= keys, sorted(keys)  # fmt: skip
    read = lambda key: json.loads(  # noqa: E731
        s3.get_object(Bucket=stack.bucket, Key=prefix + key)["Body"].read())  # fmt: skip
    candidate, train = read("outputs/registry/candidate.json"), read("outputs/train/result.json")
    assert str(train["checkpoint"]).startswith(f"s3://{stack.bucket}/"), train["checkpoint"]

    client = MlflowClient(tracking_uri=stack.mlflow_uri, registry_uri=stack.mlflow_uri)
    version = client.get_model_version(model, str(candidate["version"]))
    run = client.get_run(version.run_id)
    lineage = {k: version.tags.get(k) for k in ("git_commit", "data_hash")}
    assert lineage == {"git_commit": commit, "data_hash": data_hash}, lineage
    assert run.data.tags["git_commit"] == commit and run.info.status == "FINISHED"
    assert client.get_model_version_by_alias(model, "candidate").version == version.version
    for line in done.stdout.splitlines():  # the job's own timeline
        if line.startswith("[gglops job]") or "Running stage" in line:
            print(line)
    print(
        f"cluster job {job_id}: {seconds:.1f} s; MLflow run {run.info.run_id}, "
        f"{model} v{version.version}, lineage {lineage} (clone: {commit}, {data_hash})"
    )


def test_job_run_outside_a_pipeline_is_one_line_exit_2(tmp_path: Path, reliability) -> None:
    done = subprocess.run(
        [*GGLOPS, "job", "run", "register", "--workdir", str(tmp_path)],
        env=_env(), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.strip() == (
        f"error: {tmp_path}: not a DVC pipeline (dvc.yaml and .dvc/ are needed)"
    ), done.stderr
    reliability("`gglops job run` in a folder without a pipeline", done.stderr.strip())
