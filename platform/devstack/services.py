"""The three local services: how to start each, how to tell it is healthy, where it lives.

One small class per service behind a common `Service` interface, so the orchestration in
`devstack.core` never branches on the service name.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import sqlite3
import sys
import urllib.request
from importlib.metadata import version
from pathlib import Path

from devstack.config import HOST, StackConfig, free_port
from gglops.adapters.ray_auth import ray_auth_headers, ray_token, ray_token_path
from gglops.core.credentials import Credentials, write_private
from gglops.core.errors import ServiceError

# The environment variables a child service must not inherit from the caller's shell.
_SCRUB = ("MLFLOW_TRACKING_URI", "RAY_ADDRESS", "AWS_PROFILE", "AWS_SESSION_TOKEN")


def http_ok(url: str, timeout: float = 2.0, headers: dict[str, str] | None = None) -> bool:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return 200 <= response.status < 300
    except (OSError, ValueError):
        return False


def venv_tool(name: str) -> str:
    """A console script next to this interpreter (the venv's `weed`, `ray`), else PATH."""
    local = Path(sys.executable).parent / name
    found = str(local) if local.exists() else shutil.which(name)
    if found is None:
        raise ServiceError(f"`{name}` not found next to {sys.executable} or on PATH")
    return found


def base_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in _SCRUB}


class Service:
    """A local service: subclasses say how to start and probe it."""

    name: str = ""
    start_timeout: float = 60.0
    # `ray start` exits once the head runs: its own exit is not a failure.
    detaches: bool = False

    def __init__(self, config: StackConfig, creds: Credentials) -> None:
        self.config, self.creds = config, creds

    @property
    def url(self) -> str:
        raise NotImplementedError

    @property
    def port(self) -> int:
        raise NotImplementedError

    @property
    def marker(self) -> str:
        """A string only our instance's command line contains (its data path)."""
        raise NotImplementedError

    def command(self) -> list[str]:
        raise NotImplementedError

    def env(self) -> dict[str, str]:
        return base_env()

    def prepare(self) -> list[str]:
        """Write what the process needs before it starts; returns warnings for the user."""
        return []

    def healthy(self) -> bool:
        return http_ok(self.url)

    def after_healthy(self) -> None:
        """Hook once healthy (e.g. keep a template of a fresh DB)."""


class S3Service(Service):
    """SeaweedFS `weed mini` (master, volume, filer, S3 gateway in one process)."""

    name = "s3"
    start_timeout = 60.0

    @property
    def url(self) -> str:
        return self.config.s3_endpoint

    @property
    def port(self) -> int:
        return self.config.ports.s3

    @property
    def data_dir(self) -> Path:
        return self.config.path("s3")

    @property
    def marker(self) -> str:
        return f"-dir={self.data_dir}"

    def prepare(self) -> list[str]:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        write_private(self.config.path("s3.json"), json.dumps(self.creds.weed_identity()))
        # gglops.adapters.s3.configured_keys hands out the stack's keys only for this endpoint.
        self.config.path("s3-endpoint").write_text(self.url)
        return []

    def command(self) -> list[str]:
        weed = self.config.with_weed_ports().ports.weed
        ports = [f"-{flag}={port}" for flag, port in weed.items()]
        return [
            venv_tool("weed"), "mini", self.marker, f"-ip={HOST}", f"-ip.bind={HOST}",
            f"-bucket={self.config.bucket}", f"-s3.config={self.config.path('s3.json')}",
            f"-s3.port={self.port}", "-webdav=false", "-admin.ui=false",
            "-master.telemetry=false", "-s3.port.iceberg=0", "-s3.port.lance=0", *ports,
        ]  # fmt: skip

    def healthy(self) -> bool:
        """The gateway answers and our keys can see the bucket."""
        import boto3
        from botocore.config import Config
        from botocore.exceptions import BotoCoreError, ClientError

        client = boto3.client(
            "s3", endpoint_url=self.url, region_name=self.config.region,
            aws_access_key_id=self.creds.access_key,
            aws_secret_access_key=self.creds.secret_key.get_secret_value(),
            config=Config(connect_timeout=1, read_timeout=3, retries={"max_attempts": 0}),
        )  # fmt: skip
        try:
            client.head_bucket(Bucket=self.config.bucket)
        except (BotoCoreError, ClientError):
            return False
        return True


class MlflowService(Service):
    """`mlflow server`: sqlite backend, artifacts proxied to s3://<bucket>/mlflow."""

    name = "mlflow"
    start_timeout = 240.0

    @property
    def url(self) -> str:
        return self.config.mlflow_uri

    @property
    def port(self) -> int:
        return self.config.ports.mlflow

    @property
    def db(self) -> Path:
        return self.config.path("mlflow.db")

    @property
    def marker(self) -> str:
        return f"sqlite:///{self.db}"

    @property
    def template(self) -> Path | None:
        folder = self.config.template_dir
        return None if folder is None else folder / f"mlflow-{version('mlflow')}-empty.db"

    def command(self) -> list[str]:
        return [
            sys.executable, "-m", "mlflow", "server", "--backend-store-uri", self.marker,
            "--artifacts-destination", f"s3://{self.config.bucket}/mlflow",
            "--host", HOST, "--port", str(self.port), "--workers", "1",
        ]  # fmt: skip

    def env(self) -> dict[str, str]:
        # The server, not its clients, holds the S3 keys: clients upload through it.
        return base_env() | {
            "MLFLOW_S3_ENDPOINT_URL": self.config.s3_endpoint,
            "AWS_ACCESS_KEY_ID": self.creds.access_key,
            "AWS_SECRET_ACCESS_KEY": self.creds.secret_key.get_secret_value(),
            "AWS_DEFAULT_REGION": self.config.region,
            # Job execution starts ~7 extra worker processes (huey); we use none of them.
            "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
        }

    def prepare(self) -> list[str]:
        """A new DB starts as a copy of the migrated template: skips the migrations."""
        if not self.db.exists() and self.template is not None and self.template.exists():
            shutil.copyfile(self.template, self.db)
        return []

    def healthy(self) -> bool:
        return http_ok(f"{self.url}/health")

    def after_healthy(self) -> None:
        template = self.template
        if template is None or template.exists():
            return
        template.parent.mkdir(parents=True, exist_ok=True)
        tmp = template.with_name(f".{template.name}.{os.getpid()}.tmp")
        # sqlite's backup API: a consistent copy of a DB the server has open.
        with sqlite3.connect(self.db) as src, sqlite3.connect(tmp) as dst:
            src.backup(dst)
        tmp.replace(template)


class RayService(Service):
    """A Ray head (`ray start --head`) with the dashboard and Jobs API on 127.0.0.1."""

    name = "ray"
    start_timeout = 180.0
    detaches = True

    @property
    def url(self) -> str:
        return self.config.ray_dashboard

    @property
    def port(self) -> int:
        return self.config.ports.ray_dashboard

    @property
    def temp_dir(self) -> Path:
        return self.config.ray_temp_dir or self.config.path("ray")

    @property
    def marker(self) -> str:
        # The head's processes (gcs_server, raylet, dashboard) carry its temp dir.
        return str(self.temp_dir)

    def command(self) -> list[str]:
        ports = self.config.ports
        return [
            venv_tool("ray"), "start", "--head", f"--node-ip-address={HOST}",
            f"--port={ports.ray_gcs}", f"--dashboard-host={HOST}",
            f"--dashboard-port={ports.ray_dashboard}", f"--num-cpus={self.config.ray_cpus}",
            f"--temp-dir={self.temp_dir}", "--include-dashboard=true",
            f"--dashboard-agent-listen-port={free_port()}", "--disable-usage-stats",
        ]  # fmt: skip

    def env(self) -> dict[str, str]:
        """The cluster side holds the credentials: jobs and workers inherit the head's env, so
        `gglops submit` need not ship the S3 keys in a runtime env (which Ray logs in clear).
        An MLflow token, if any, comes from the shell that runs `gglops stack up`."""
        return base_env() | {
            # Explicit, so that the head and the clients of `gglops stack env` always agree.
            "RAY_AUTH_MODE": "token",
            # `ray start` turns --node-ip-address=127.0.0.1 into the host's address, and then
            # binds its agents and metrics ports there and on 0.0.0.0. With this (Ray's switch
            # for single-node Windows/macOS) the node IP is 127.0.0.1, so every Ray socket
            # listens on loopback; the price: no other node can join this head (none should).
            "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
            # Ray's own state-API lookups in workers (Train's placement-group cleaner) find
            # the cluster here; unset they scan the machine and, finding several Ray
            # instances, print a "Found multiple active Ray instances" traceback.
            "RAY_ADDRESS": self.config.ray_gcs,
            "GGLOPS_S3_ENDPOINT_URL": self.config.s3_endpoint,
            "MLFLOW_S3_ENDPOINT_URL": self.config.s3_endpoint,
            "AWS_ACCESS_KEY_ID": self.creds.access_key,
            "AWS_SECRET_ACCESS_KEY": self.creds.secret_key.get_secret_value(),
            "AWS_DEFAULT_REGION": self.config.region,
        }

    def prepare(self) -> list[str]:
        self.temp_dir.mkdir(parents=True, exist_ok=True)
        return ensure_ray_token()

    def healthy(self) -> bool:
        return http_ok(f"{self.url}/api/version", headers=ray_auth_headers())


def loose_token_mode(path: Path) -> int | None:
    """The file's mode if users other than its owner may read or write it, else None."""
    try:
        mode = path.stat().st_mode & 0o777
    except OSError:
        return None
    return mode if mode & 0o077 else None


def ensure_ray_token() -> list[str]:
    """`ray start --head` in token mode refuses to start without a token (it never makes one,
    unlike a local `ray.init()`), so a fresh machine gets one, as `ray get-auth-token
    --generate` would make it, but private to the user (mode 0600).

    A token file that others can read (Ray's own `ray.init()` writes it with the umask, 0644)
    is made private, with a warning: whoever read it can drive the cluster."""
    path = ray_token_path()
    if ray_token() is None:
        write_private(path, secrets.token_hex(32))
        return []
    mode = loose_token_mode(path)
    if mode is None:
        return []
    os.chmod(path, 0o600)
    return [
        f"warning: Ray token file {path} had mode {mode:04o} (readable by other users); "
        f"set it to 0600. If someone else may have read it, delete it and run "
        f"`gglops stack down` then `gglops stack up` for a new token"
    ]


def dashboard_login_hint(url: str) -> str:
    """How a person logs in to a token-protected Ray dashboard (Ray 2.60's dialog asks for
    the token itself; the dashboard then keeps it in a cookie for 30 days)."""
    source = "$RAY_AUTH_TOKEN" if os.environ.get("RAY_AUTH_TOKEN") else str(ray_token_path())
    return (
        f"Ray dashboard {url} asks for a token: paste the contents of {source} "
        f"(`ray get-auth-token` prints it) into its 'Authentication Token Required' dialog; "
        f'scripts send it as a header: curl -H "Authorization: Bearer $(ray get-auth-token)" '
        f"{url}/api/version"
    )


SERVICES: dict[str, type[Service]] = {
    cls.name: cls for cls in (S3Service, MlflowService, RayService)
}
