"""Real S3 (SeaweedFS) and MLflow server fixtures; see devstack.

`stack` starts both once per session (in a tmp dir, on free ports) through the same
`devstack.Stack` that `gglops stack up` uses, and stops them at the end. Fault-injection
tests can `stack.stop_s3()` and `stack.start_s3()` mid-test (the data survives).
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from devstack import Ports, Stack, StackConfig


@dataclass
class StackInfo:
    s3_endpoint: str
    bucket: str
    mlflow_uri: str
    access_key: str
    secret_key: str
    env: dict[str, str]
    startup_s: float
    handle: Stack = field(repr=False)

    def stop_s3(self) -> None:
        self.handle.stop("s3")

    def start_s3(self) -> None:
        self.handle.up(["s3"])

    def restart_s3(self) -> None:
        self.stop_s3()
        self.start_s3()

    def stop_mlflow(self) -> None:
        self.handle.stop("mlflow")

    def start_mlflow(self) -> None:
        self.handle.up(["mlflow"])

    def s3_client(self) -> Any:
        """A boto3 client with the stack's own keys (tests read the bucket directly)."""
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.s3_endpoint,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name="us-east-1",
        )


def _cache_dir(config: pytest.Config) -> Path | None:
    cache = getattr(config, "cache", None)  # None under `-p no:cacheprovider`
    return None if cache is None else cache.mkdir("gglops-mlflow")


@pytest.fixture(scope="session")
def stack(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[StackInfo]:
    """SeaweedFS S3 + mlflow server (sqlite in tmp, artifacts in s3://gglops/mlflow)."""
    config = StackConfig(
        stack_dir=tmp_path_factory.mktemp("stack"),
        ports=Ports.free(),
        # Keep the migrated empty MLflow DB between sessions: the next start skips migrations.
        template_dir=_cache_dir(request.config),
    )
    stack = Stack(config)
    t0 = time.monotonic()
    try:
        stack.up(["s3", "mlflow"])
        secret = stack.creds.secret_key.get_secret_value()
        yield StackInfo(
            s3_endpoint=config.s3_endpoint, bucket=config.bucket, mlflow_uri=config.mlflow_uri,
            access_key=stack.creds.access_key, secret_key=secret,
            env=stack.env(with_ray=False), startup_s=time.monotonic() - t0, handle=stack,
        )  # fmt: skip
    finally:
        stack.down(["s3", "mlflow"])


@pytest.fixture
def stack_env(stack: StackInfo, monkeypatch: pytest.MonkeyPatch) -> StackInfo:
    """`stack.env` applied to os.environ for one test."""
    for name, value in stack.env.items():
        monkeypatch.setenv(name, value)
    return stack


@dataclass
class RayHead:
    dashboard_url: str
    gcs_address: str
    stack_dir: Path
    startup_s: float
    config: StackConfig


@pytest.fixture(scope="session")
def ray_head(stack: StackInfo) -> Iterator[RayHead]:
    """A local Ray head with the Jobs API in the `stack`'s dir, started like `gglops stack up`
    does: with that stack's S3 keys in its env, as jobs get credentials from the cluster."""
    # Ray's unix socket paths must stay short: its temp dir goes straight under /tmp.
    ray_tmp = Path(tempfile.mkdtemp(prefix="gglray-"))
    shared = stack.handle.config
    config = StackConfig(stack_dir=shared.stack_dir, ports=shared.ports, ray_temp_dir=ray_tmp)
    stack = Stack(config)
    t0 = time.monotonic()
    try:
        stack.up(["ray"])
        yield RayHead(config.ray_dashboard, config.ray_gcs, config.stack_dir,
                      time.monotonic() - t0, config)  # fmt: skip
    finally:
        stack.down(["ray"])
        shutil.rmtree(ray_tmp, ignore_errors=True)
