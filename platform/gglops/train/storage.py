"""Ray storage (checkpoints, Tune state): a local directory or `s3://bucket/prefix`.

Both go through a pyarrow filesystem so that run-name lookup and the writability probe are
one code path; an S3 path uses the configured endpoint (SeaweedFS, MinIO, AWS).
"""

from __future__ import annotations

import os
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import pyarrow.fs as pafs
from pydantic import SecretStr

from gglops.errors import ServiceError, UsageError
from gglops.settings import Settings

STORAGE_SETTING = "GGLOPS_STORAGE_PATH"


@dataclass(frozen=True)
class Storage:
    """`path` inside `filesystem` (for S3: "bucket/prefix"); `uri` is what users see."""

    uri: str
    path: str
    filesystem: pafs.FileSystem

    def is_local(self) -> bool:
        return isinstance(self.filesystem, pafs.LocalFileSystem)

    def child_uri(self, path: str) -> str:
        """User-facing URI of a path inside this storage (e.g. a checkpoint)."""
        return path if self.is_local() else f"s3://{path}"


def resolve_storage(settings: Settings, storage_path: str | None = None) -> Storage:
    uri = storage_path or settings.storage_path
    if not uri.startswith("s3://"):
        return Storage(uri=uri, path=str(Path(uri).absolute()), filesystem=pafs.LocalFileSystem())
    parsed = urlparse(uri)
    return Storage(
        uri=uri,
        path=f"{parsed.netloc}{parsed.path}".rstrip("/"),
        filesystem=_s3_filesystem(settings),
    )


def _s3_filesystem(settings: Settings) -> pafs.S3FileSystem:
    endpoint = urlparse(settings.s3_endpoint_url)
    access, secret = _s3_keys(settings)
    return pafs.S3FileSystem(
        endpoint_override=endpoint.netloc,
        scheme=endpoint.scheme or "http",
        access_key=access,
        secret_key=secret,
        region=settings.s3_region,
        connect_timeout=5,
        request_timeout=30,
    )


def _s3_keys(settings: Settings) -> tuple[str | None, str | None]:
    """Explicit GGLOPS_AWS_* keys, else boto3's usual AWS_* variables."""
    access = settings.aws_access_key_id or os.environ.get("AWS_ACCESS_KEY_ID")
    secret = settings.aws_secret_access_key or os.environ.get("AWS_SECRET_ACCESS_KEY")
    return _secret(access), _secret(secret)


def _secret(value: SecretStr | str | None) -> str | None:
    return value.get_secret_value() if isinstance(value, SecretStr) else value


def check_writable(storage: Storage) -> None:
    """Write and delete a probe file; any failure is one line naming the setting."""
    probe = f"{storage.path}/.gglops-write-probe-{uuid.uuid4().hex[:8]}"
    try:
        storage.filesystem.create_dir(storage.path, recursive=True)
        with storage.filesystem.open_output_stream(probe) as out:
            out.write(b"ok")
        storage.filesystem.delete_file(probe)
    except OSError as exc:
        error = ServiceError if not storage.is_local() else UsageError
        reason = str(exc).splitlines()[0][:160]
        raise error(f"{STORAGE_SETTING}={storage.uri} is not writable: {reason}") from None


def existing_runs(storage: Storage, run_name: str) -> list[str]:
    """Names of earlier runs `<run_name>-<timestamp>` under the storage path, oldest first."""
    selector = pafs.FileSelector(storage.path, allow_not_found=True)
    infos = storage.filesystem.get_file_info(selector)
    prefix = f"{run_name}-"
    names = [
        i.base_name
        for i in infos
        if i.type == pafs.FileType.Directory and i.base_name.startswith(prefix)
    ]
    return sorted(names)


def new_run_name(run_name: str) -> str:
    """A fresh, sortable name, so an earlier run of the same name is never reused by accident."""
    return f"{run_name}-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:4]}"
