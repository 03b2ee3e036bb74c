"""Where the local stack lives and which ports it uses (a value object, no side effects)."""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Collection
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import urlparse

from gglops.core.errors import UsageError
from gglops.core.settings import Settings

HOST = "127.0.0.1"
# SeaweedFS `weed mini` opens these besides S3 (flag names); internal, so any free port does.
WEED_PORT_FLAGS = (
    *(f"{server}.port" for server in ("master", "volume", "filer", "admin")),
    *(f"{server}.port.grpc" for server in ("master", "volume", "filer", "admin", "s3")),
)
DEFAULT_DASHBOARD_PORT = 8265
# `ray start` hands its workers ports 10002-19999 (--min/max-worker-port) and its client server
# 10001: a stack port in there collides with Ray, which then fails naming neither.
RAY_RESERVED_PORTS = range(10001, 20000)
# Which setting configures each stack port (for messages that say what to change).
PORT_SETTINGS = {
    "s3": "GGLOPS_S3_ENDPOINT_URL",
    "mlflow": "GGLOPS_MLFLOW_TRACKING_URI",
    "ray_gcs": "GGLOPS_RAY_GCS_PORT",
    "ray_dashboard": "GGLOPS_RAY_DASHBOARD_URL",
}


def user_cache_dir() -> Path:
    """Where the migrated-empty MLflow DB template is kept, shared by all stacks of a user."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "gglops"


def free_port(avoid: Collection[int] = ()) -> int:
    """A port nothing listens on right now (the OS picks it), outside Ray's reserved range."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((HOST, 0))
            port = int(sock.getsockname()[1])
        if port not in RAY_RESERVED_PORTS and port not in avoid:
            return port


def port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((HOST, port)) == 0


def _url_port(url: str, setting: str) -> int:
    parsed = urlparse(url)
    try:
        port = parsed.port
    except ValueError:  # urlparse refuses ports above 65535 or not numeric
        raise UsageError(
            f"setting {setting}={url}: port {parsed.netloc.rpartition(':')[2]} is not in 1-65535"
        ) from None
    if parsed.hostname not in (HOST, "localhost") or port is None:
        raise UsageError(f"setting {setting}={url}: the local stack serves http://{HOST}:PORT only")
    return port


@dataclass(frozen=True)
class Ports:
    s3: int = 8333
    mlflow: int = 5000
    ray_gcs: int = 6379
    ray_dashboard: int = DEFAULT_DASHBOARD_PORT
    # weed's internal servers, by flag name (see WEED_PORT_FLAGS)
    weed: dict[str, int] = field(default_factory=dict)

    def named(self) -> dict[str, int]:
        """The configurable ports by field name (the keys of PORT_SETTINGS)."""
        return {name: getattr(self, name) for name in PORT_SETTINGS}

    def check(self, with_ray: bool) -> None:
        """Refuse a port that is invalid, used twice, or inside Ray's reserved range, naming
        its setting: before `up` starts anything."""
        named, seen = self.named(), dict[int, str]()
        for name, port in named.items():
            if not with_ray and name.startswith("ray_"):
                continue
            setting = PORT_SETTINGS[name]
            if not 1 <= port <= 65535:
                raise UsageError(f"setting {setting}: port {port} is not in 1-65535")
            if port in seen:
                raise UsageError(
                    f"settings {PORT_SETTINGS[seen[port]]} and {setting} both use port {port}; "
                    "give each stack service its own port"
                )
            seen[port] = name
            if with_ray and port in RAY_RESERVED_PORTS:
                raise UsageError(
                    f"setting {setting}: port {port} is inside Ray's worker/client port range "
                    f"{RAY_RESERVED_PORTS.start}-{RAY_RESERVED_PORTS.stop - 1}; choose a port "
                    "outside it"
                )

    @classmethod
    def free(cls) -> Ports:
        """Every port free: for tests that run next to another stack."""
        picked: list[int] = []
        for _ in PORT_SETTINGS:
            picked.append(free_port(avoid=picked))
        s3, mlflow, ray_gcs, ray_dashboard = picked
        return cls(s3=s3, mlflow=mlflow, ray_gcs=ray_gcs, ray_dashboard=ray_dashboard)


@dataclass(frozen=True)
class StackConfig:
    stack_dir: Path
    ports: Ports = field(default_factory=Ports)
    bucket: str = "gglops"
    region: str = "us-east-1"
    ray_cpus: int = 4
    # Ray puts unix sockets under its temp dir, whose path must stay short (~100 chars).
    ray_temp_dir: Path | None = None
    # A migrated empty MLflow DB per mlflow version: a new stack copies it instead of
    # running ~40 migrations (the bulk of mlflow's first start).
    template_dir: Path | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> StackConfig:
        ports = Ports(
            s3=_url_port(settings.s3_endpoint_url, "GGLOPS_S3_ENDPOINT_URL"),
            mlflow=_url_port(settings.mlflow_tracking_uri, "GGLOPS_MLFLOW_TRACKING_URI"),
            ray_gcs=settings.ray_gcs_port,
            ray_dashboard=_url_port(settings.ray_dashboard_url, "GGLOPS_RAY_DASHBOARD_URL"),
        )
        stack_dir = settings.stack_dir.absolute()
        return cls(
            stack_dir=stack_dir,
            ports=ports,
            bucket=settings.s3_bucket,
            region=settings.s3_region,
            template_dir=user_cache_dir(),
        )

    @property
    def s3_endpoint(self) -> str:
        return f"http://{HOST}:{self.ports.s3}"

    @property
    def mlflow_uri(self) -> str:
        return f"http://{HOST}:{self.ports.mlflow}"

    @property
    def ray_dashboard(self) -> str:
        return f"http://{HOST}:{self.ports.ray_dashboard}"

    @property
    def ray_gcs(self) -> str:
        return f"{HOST}:{self.ports.ray_gcs}"

    def path(self, name: str) -> Path:
        return self.stack_dir / name

    def with_weed_ports(self) -> StackConfig:
        """Fix weed's internal ports once per stack dir (kept in weed-ports.json)."""
        record = self.path("weed-ports.json")
        ports = json.loads(record.read_text()) if record.exists() else {}
        if not ports or any(port_in_use(p) for p in ports.values()):
            ports = {flag: free_port() for flag in WEED_PORT_FLAGS}
            record.parent.mkdir(parents=True, exist_ok=True)
            record.write_text(json.dumps(ports))
        return replace(self, ports=replace(self.ports, weed=ports))
