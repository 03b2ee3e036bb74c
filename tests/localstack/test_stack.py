"""`gglops stack up|status|env|down` on real services in a tmp stack dir with free ports."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from devstack.config import Ports, StackConfig, port_in_use
from gglops.adapters.s3 import configured_keys
from gglops.core.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
GGLOPS = [sys.executable, "-m", "gglops"]


def _gglops(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*GGLOPS, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )


def _stack_env(stack_dir: Path, ports: Ports, cache: Path) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("GGLOPS_", "MLFLOW_"))}
    return base | {
        "GGLOPS_STACK_DIR": str(stack_dir),
        "GGLOPS_S3_ENDPOINT_URL": f"http://127.0.0.1:{ports.s3}",
        "GGLOPS_MLFLOW_TRACKING_URI": f"http://127.0.0.1:{ports.mlflow}",
        "GGLOPS_RAY_DASHBOARD_URL": f"http://127.0.0.1:{ports.ray_dashboard}",
        "GGLOPS_RAY_GCS_PORT": str(ports.ray_gcs),
        "XDG_CACHE_HOME": str(cache),  # the MLflow DB template the `stack` fixture also uses
    }


class CliStack:
    def __init__(
        self, root: Path, env: dict[str, str], up: subprocess.CompletedProcess[str], seconds: float
    ) -> None:
        self.root, self.env, self.up, self.up_seconds = root, env, up, seconds
        self.stack_dir = Path(env["GGLOPS_STACK_DIR"])

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return _gglops(list(args), self.env, self.root)


@pytest.fixture(scope="module")
def cli_stack(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[CliStack]:
    root = tmp_path_factory.mktemp("checkout")
    cache = request.config.cache.mkdir("gglops-xdg") if request.config.cache else root / "c"
    env = _stack_env(root / ".stack", Ports.free(), cache)
    t0 = time.monotonic()
    up = _gglops(["stack", "up", "--no-ray"], env, root)
    stack = CliStack(root, env, up, time.monotonic() - t0)
    try:
        assert up.returncode == 0, up.stderr
        yield stack
    finally:
        stack.run("stack", "down")


def test_up_status_and_idempotent_up(cli_stack: CliStack) -> None:
    print(f"gglops stack up --no-ray: {cli_stack.up_seconds:.1f} s")
    assert cli_stack.up.stdout.count("started") == 2
    status = cli_stack.run("stack", "status", "--no-ray")
    assert status.returncode == 0, status.stdout
    for var in ("GGLOPS_S3_ENDPOINT_URL", "GGLOPS_MLFLOW_TRACKING_URI"):
        assert cli_stack.env[var] in status.stdout
    t0 = time.monotonic()
    again = cli_stack.run("stack", "up", "--no-ray")
    assert again.returncode == 0 and again.stdout.count("already running") == 2
    assert time.monotonic() - t0 < 30  # no restart: nothing waits for health


def test_credentials_private_and_never_logged(cli_stack: CliStack) -> None:
    creds = cli_stack.stack_dir / "credentials.json"
    assert creds.stat().st_mode & 0o777 == 0o600
    secret = json.loads(creds.read_text())["secret_key"]
    assert len(secret) >= 32
    for log in (cli_stack.stack_dir / "logs").iterdir():
        assert secret not in log.read_text(errors="replace"), log
    assert secret not in cli_stack.up.stdout + cli_stack.up.stderr
    assert secret not in cli_stack.run("stack", "status", "--no-ray").stdout


def test_env_evaluates_in_bash_and_reaches_services(cli_stack: CliStack) -> None:
    probe = (
        "import boto3, mlflow, os; "
        "s3 = boto3.client('s3', endpoint_url=os.environ['MLFLOW_S3_ENDPOINT_URL']); "
        "print('buckets', [b['Name'] for b in s3.list_buckets()['Buckets']]); "
        "print('experiments', len(mlflow.search_experiments()))"
    )
    gglops = " ".join(GGLOPS)
    script = f'eval "$({gglops} stack env --no-ray)" && {sys.executable} -c "{probe}"'
    done = subprocess.run(
        ["bash", "-c", script],
        cwd=cli_stack.root,
        env=cli_stack.env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "buckets ['gglops']" in done.stdout
    assert "experiments 1" in done.stdout  # the Default experiment, through the server


def test_settings_hand_out_local_keys_only_for_the_local_endpoint(cli_stack: CliStack) -> None:
    stack_dir, endpoint = cli_stack.stack_dir, cli_stack.env["GGLOPS_S3_ENDPOINT_URL"]
    secret = json.loads((stack_dir / "credentials.json").read_text())["secret_key"]
    local = configured_keys(Settings(stack_dir=stack_dir, s3_endpoint_url=endpoint))
    assert local is not None and local[1] == secret
    assert (
        configured_keys(Settings(stack_dir=stack_dir, s3_endpoint_url="http://s3.example:9000"))
        is None
    )
    explicit = Settings(
        stack_dir=stack_dir,
        s3_endpoint_url=endpoint,
        aws_access_key_id="a",
        aws_secret_access_key="b",
    )  # type: ignore[arg-type]
    assert configured_keys(explicit) == ("a", "b")


def test_status_reports_a_ray_head(ray_head) -> None:
    env = _stack_env(ray_head.stack_dir, ray_head.config.ports, Path("/nonexistent"))
    done = _gglops(["stack", "status"], env, ROOT)
    assert done.returncode == 0, done.stdout  # the head shares the `stack` fixture's dir
    ray_row = next(line for line in done.stdout.splitlines() if "ray" in line)
    assert ray_head.dashboard_url in ray_row and "yes" in ray_row
    print(f"Ray head start: {ray_head.startup_s:.1f} s")
    # How to log in to the dashboard: the token's file, and what the dashboard's dialog does
    # with a pasted token (POST /api/authenticate, which sets the session cookie).
    from gglops.adapters.ray_auth import ray_auth_headers, ray_token_path

    hint = next(line for line in done.stdout.splitlines() if "asks for a token" in line)
    assert str(ray_token_path()) in hint and "Authentication Token Required" in hint, hint
    request = urllib.request.Request(
        f"{ray_head.dashboard_url}/api/authenticate", data=b"", headers=ray_auth_headers()
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200
        assert "ray-authentication-token=" in response.headers["Set-Cookie"]


def test_env_lets_ray_clients_join_the_head(ray_head) -> None:
    # What `make demo` does: stages see only `stack env`, and Ray's token auth must pass.
    env = _stack_env(ray_head.stack_dir, ray_head.config.ports, Path("/nonexistent"))
    env = {k: v for k, v in env.items() if not k.startswith("RAY_")}
    probe = "import ray; ray.init(); print('cpus', int(ray.cluster_resources()['CPU']))"
    script = f'eval "$({" ".join(GGLOPS)} stack env)" && {sys.executable} -c "{probe}"'
    done = subprocess.run(
        ["bash", "-c", script], env=env, cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"cpus {ray_head.config.ray_cpus}" in done.stdout


@pytest.mark.integration  # starts real services without the shared fixtures
def test_ray_head_starts_on_a_machine_without_a_ray_token(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, reliability
) -> None:
    # A fresh machine: no ~/.ray/auth_token, which `ray start --head` in token mode requires
    # and never makes (a local `ray.init()` earlier in a session used to make it).
    import tempfile

    from devstack.core import Stack
    from gglops.adapters.ray_auth import ray_auth_headers

    monkeypatch.setenv("HOME", str(tmp_path))
    for name in ("RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH", "RAY_AUTH_MODE"):
        monkeypatch.delenv(name, raising=False)
    token = tmp_path / ".ray" / "auth_token"
    ray_tmp = Path(tempfile.mkdtemp(prefix="gglray-"))  # Ray's socket paths must stay short
    stack = Stack(
        StackConfig(stack_dir=tmp_path / "stack", ports=Ports.free(), ray_temp_dir=ray_tmp)
    )
    try:
        stack.up(["ray"])
        assert token.stat().st_mode & 0o777 == 0o600 and len(token.read_text()) == 64
        assert ray_auth_headers() == {"Authorization": f"Bearer {token.read_text()}"}
        first = token.read_text()
        stack.up(["ray"])  # idempotent: the token (and the head holding it) stay
        assert token.read_text() == first
    finally:
        stack.down(["ray"])
        shutil.rmtree(ray_tmp, ignore_errors=True)
    reliability("no Ray auth token on the machine (fresh HOME)",
                "`stack up` made ~/.ray/auth_token (0600) and the head started")  # fmt: skip


def test_down_stops_only_what_up_started(cli_stack: CliStack, reliability) -> None:
    # A foreign process: on the (unused) Ray dashboard port, and named by a forged pid file.
    port = int(cli_stack.env["GGLOPS_RAY_DASHBOARD_URL"].rsplit(":", 1)[1])
    foreign = subprocess.Popen(
        [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        (cli_stack.stack_dir / "ray.pid").write_text(
            json.dumps({"pid": foreign.pid, "marker": "x"})
        )
        s3, mlflow = (
            int(cli_stack.env[v].rsplit(":", 1)[1])
            for v in ("GGLOPS_S3_ENDPOINT_URL", "GGLOPS_MLFLOW_TRACKING_URI")
        )
        down = cli_stack.run("stack", "down")
        assert down.returncode == 0 and "s3" in down.stdout and "mlflow" in down.stdout
        assert "ray" not in down.stdout
        assert foreign.poll() is None  # still running
        assert not port_in_use(s3) and not port_in_use(mlflow)
        assert cli_stack.run("stack", "status", "--no-ray").returncode == 1
        reliability(
            "`stack down` with a foreign process on a stack port / a stale pid file",
            f"foreign pid {foreign.pid} left running; {down.stdout.strip()}",
        )
    finally:
        foreign.terminate()
        foreign.wait()


def test_up_refuses_bad_ports_before_starting_anything(tmp_path: Path, reliability) -> None:
    # Ports inside Ray's worker range, used twice, or out of range: refused by the check that
    # runs before any service starts (so nothing is left running).
    ports = Ports.free()
    base = _stack_env(tmp_path / ".stack", ports, tmp_path / "cache")
    cases = {
        "GGLOPS_RAY_GCS_PORT=12000 (Ray's worker port range)": {"GGLOPS_RAY_GCS_PORT": "12000"},
        "GGLOPS_MLFLOW_TRACKING_URI on the S3 port": {
            "GGLOPS_MLFLOW_TRACKING_URI": f"http://127.0.0.1:{ports.s3}"
        },
        "GGLOPS_RAY_DASHBOARD_URL port 70000": {
            "GGLOPS_RAY_DASHBOARD_URL": "http://127.0.0.1:70000"
        },
    }
    expected = {
        "GGLOPS_RAY_GCS_PORT=12000 (Ray's worker port range)": (
            "GGLOPS_RAY_GCS_PORT",
            "10001-19999",
        ),
        "GGLOPS_MLFLOW_TRACKING_URI on the S3 port": ("GGLOPS_MLFLOW_TRACKING_URI", str(ports.s3)),
        "GGLOPS_RAY_DASHBOARD_URL port 70000": ("GGLOPS_RAY_DASHBOARD_URL", "70000"),
    }
    for case, extra in cases.items():
        done = _gglops(["stack", "up"], base | extra, tmp_path)
        lines = done.stderr.strip().splitlines()
        assert done.returncode == 2 and len(lines) == 1, done.stderr
        assert all(word in lines[0] for word in expected[case]), lines[0]
        assert "Traceback" not in done.stderr
        assert not list((tmp_path / ".stack").glob("*.pid")), "something was started"
        assert not port_in_use(ports.s3) and not port_in_use(ports.mlflow)
        reliability(f"`stack up` with {case}", f"exit 2 before starting anything; {lines[0]}")


@pytest.mark.integration  # starts real services without the shared fixtures
def test_up_rolls_back_when_a_later_service_fails(tmp_path: Path, reliability) -> None:
    # MLflow cannot start on a corrupt DB file; S3, started by the same `up`, must not be
    # left running behind it.
    ports = Ports.free()
    env = _stack_env(tmp_path / ".stack", ports, tmp_path / "cache")
    (tmp_path / ".stack").mkdir()
    (tmp_path / ".stack" / "mlflow.db").write_bytes(b"not a sqlite database\0" * 64)
    done = _gglops(["stack", "up", "--no-ray"], env, tmp_path)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1 and "mlflow" in lines[0], done.stderr
    assert not port_in_use(ports.s3), "S3 left running after the failed `up`"
    assert not list((tmp_path / ".stack").glob("*.pid"))
    reliability(
        "`stack up`: MLflow fails to start after S3 started (corrupt mlflow.db)",
        f"exit 2; S3 stopped again (port {ports.s3} free, no pid files); {lines[0][:160]}",
    )


def test_loose_ray_token_file_is_named_and_made_private(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, reliability
) -> None:
    from devstack.services import ensure_ray_token

    token = tmp_path / ".ray" / "auth_token"
    token.parent.mkdir()
    token.write_text("a" * 64)
    token.chmod(0o644)
    env = _stack_env(tmp_path / ".stack", Ports.free(), tmp_path / "cache")
    env = {k: v for k, v in env.items() if not k.startswith("RAY_AUTH_TOKEN")} | {
        "HOME": str(tmp_path)
    }
    status = _gglops(["stack", "status"], env, tmp_path)
    warning = next(line for line in status.stderr.splitlines() if "warning" in line)
    assert str(token) in warning and "0644" in warning, status.stderr
    assert "Traceback" not in status.stderr
    # What `stack up` does before starting the head (RayService.prepare).
    monkeypatch.setenv("HOME", str(tmp_path))
    for name in ("RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH"):
        monkeypatch.delenv(name, raising=False)
    notes = ensure_ray_token()
    assert len(notes) == 1 and str(token) in notes[0] and "0644" in notes[0], notes
    assert token.stat().st_mode & 0o777 == 0o600 and token.read_text() == "a" * 64
    assert ensure_ray_token() == []  # private now: said once
    reliability(
        "pre-existing ~/.ray/auth_token at mode 0644",
        f"`stack status` warns; `stack up` sets it to 0600 and says: {notes[0][:150]}",
    )
