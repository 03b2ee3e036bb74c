"""`gglops submit` against a real local Ray head (the `ray_head` fixture)."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from gglops.stack.config import free_port

ROOT = Path(__file__).resolve().parents[1]
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

    from gglops.stack.services import ray_auth_headers

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
    assert "note: this process ignores SIGINT" in done.stderr and hint in done.stderr


def test_submit_ships_no_secret_unless_asked(tmp_path: Path) -> None:
    from gglops.jobs import job_env
    from gglops.settings import Settings

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


def test_a_failed_stop_request_is_one_line_naming_the_way_out(capsys) -> None:
    """A dashboard that fails (or a second Ctrl-C during) the stop request: exit 130 anyway,
    one line saying the job may still run and how to stop it."""
    from gglops import jobs

    class Refusing:
        def stop_job(self, job_id: str) -> bool:
            raise RuntimeError("Failed to get head node agent within 10 seconds\nTraceback ...")

    assert jobs._stop(Refusing(), "raysubmit_x", "ray job stop --address URL raysubmit_x") == 130
    assert capsys.readouterr().err == (
        "could not stop raysubmit_x (Failed to get head node agent within 10 seconds); "
        "stop it with: ray job stop --address URL raysubmit_x\n"
    )
