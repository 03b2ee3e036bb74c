"""Ray storage (checkpoints, Tune state): a local directory or `s3://bucket/prefix`.

Both go through a pyarrow filesystem so that run-name lookup and the writability probe are
one code path; an S3 path uses the configured endpoint (SeaweedFS, MinIO, AWS).
"""

from __future__ import annotations

import errno
import os
import shutil
import socket
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pyarrow.fs as pafs

from gglops.adapters.s3 import s3_keys
from gglops.core.errors import ServiceError, UsageError, first_line
from gglops.core.settings import Settings

STORAGE_SETTING = "GGLOPS_STORAGE_PATH"
MIB = 2**20
STORAGE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS}


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
    keys = s3_keys(settings)
    # Ray pickles the filesystem into Tune's and Train's state on the cluster: there, the nodes'
    # own AWS_* variables (a Secret, the stack head's env) hold the keys, so only keys given
    # to gglops itself (GGLOPS_AWS_*) go into it; elsewhere pyarrow's default chain on the
    # nodes reads them. A Ray of our own may have started before the keys were in its env,
    # so it gets them explicitly.
    explicit = settings.aws_access_key_id is not None and settings.aws_secret_access_key is not None
    on_cluster = settings.ray_address is not None
    given = keys if keys is not None and (explicit or not on_cluster) else None
    credentials = {"access_key": given[0], "secret_key": given[1]} if given else {}
    return pafs.S3FileSystem(
        endpoint_override=endpoint.netloc,
        scheme=endpoint.scheme or "http",
        **credentials,
        region=settings.s3_region,
        connect_timeout=5,
        request_timeout=30,
    )


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
        reason = first_line(exc)
        raise error(f"{STORAGE_SETTING}={storage.uri} is not writable: {reason}") from None


def check_space(storage: Storage, needed: int) -> None:
    """Refuse before compute when a local storage path cannot hold the kept checkpoints."""
    if not storage.is_local():
        return  # object stores have no free-space figure to check
    free = shutil.disk_usage(storage.path).free
    if free < needed:
        raise UsageError(
            f"{STORAGE_SETTING}={storage.uri} has {free / MIB:.1f} MiB free but the kept "
            f"checkpoints need about {needed / MIB:.1f} MiB (free space or lower "
            "train.keep_checkpoints)"
        )


def storage_failure(exc: BaseException, storage: Storage) -> ServiceError | None:
    """The one line for a run that failed on its checkpoint storage (disk full, S3 gone);
    None when the failure was something else.

    Ray wraps the worker's or the controller's OSError (ControllerError.controller_failure,
    WorkerGroupError.worker_failures); walk those and the exception chain to find it.
    """
    cause = _os_error(exc, depth=0)
    if cause is None or not _about_storage(cause, storage):
        return None
    reason = cause.strerror or first_line(cause)
    return ServiceError(
        f"{STORAGE_SETTING}={storage.uri} failed during training: {reason}; "
        "the checkpoints already written are kept"
    )


def _about_storage(error: OSError, storage: Storage) -> bool:
    """A full/read-only disk, or an error naming the storage path (S3 names the key)."""
    key = storage.path if storage.is_local() else storage.path.partition("/")[2]
    return error.errno in STORAGE_ERRNOS or bool(key and key in str(error))


def _os_error(exc: BaseException | None, depth: int) -> OSError | None:
    if exc is None or depth > 8:
        return None
    if isinstance(exc, OSError):
        return exc
    nested = [getattr(exc, "controller_failure", None), exc.__cause__, exc.__context__]
    nested += list(getattr(exc, "worker_failures", {}).values())
    return next((found for e in nested if (found := _os_error(e, depth + 1)) is not None), None)


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


LOCK_TTL_S = 120.0  # an S3 lock outlives a killed driver by at most this long


def lock_location(storage: Storage, run_name: str) -> str:
    """Where the run's lock lives: beside its directory (a file, or an S3 object)."""
    return f"{storage.path}/.{run_name}.lock"


@contextmanager
def run_lock(storage: Storage, run_name: str, settings: Settings) -> Iterator[None]:
    """One `gglops train` per run at a time: a second one (say two `--resume`s) is refused
    with one line naming the run, before it restores or writes anything.

    Local storage: flock on a lock file (the kernel drops it when the holder dies). S3: the
    promotion lease (conditional writes), renewed while training, so a killed driver blocks
    the next resume for at most LOCK_TTL_S."""
    holder = f"pid {os.getpid()} on {socket.gethostname()}"
    where = lock_location(storage, run_name)
    manager = _file_lock if storage.is_local() else _s3_lock
    with manager(storage, where, holder, run_name, settings):
        yield


def _busy(run_name: str, detail: str) -> UsageError:
    return UsageError(
        f"run {run_name} is being trained by another `gglops train` ({detail}); wait for it "
        "to finish or stop it, then --resume"
    )


@contextmanager
def _file_lock(
    storage: Storage, where: str, holder: str, run_name: str, settings: Settings
) -> Iterator[None]:
    import fcntl

    Path(where).parent.mkdir(parents=True, exist_ok=True)
    with open(where, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            raise _busy(run_name, f"{handle.read().strip() or 'unknown'}, lock {where}") from None
        handle.seek(0)
        handle.truncate()
        handle.write(holder)
        handle.flush()
        yield


@contextmanager
def _s3_lock(
    storage: Storage, where: str, holder: str, run_name: str, settings: Settings
) -> Iterator[None]:
    import threading

    from gglops.adapters.s3 import ArtifactStore, LeaseBusyError, lease

    bucket, _, key = where.partition("/")
    store = ArtifactStore(settings, bucket=bucket)
    try:
        with lease(store, key, holder, LOCK_TTL_S) as mine:
            stop = threading.Event()
            renewer = threading.Thread(
                target=_renew, args=(store, key, mine, stop), daemon=True, name="run-lock"
            )
            renewer.start()
            try:
                yield
            finally:
                stop.set()
                renewer.join(timeout=10)
    except LeaseBusyError as exc:
        raise _busy(run_name, str(exc)) from None


def _renew(store: Any, key: str, mine: Any, stop: Any) -> None:
    """Push the lease's expiry forward while we hold it (If-Match: only our own version)."""
    while not stop.wait(LOCK_TTL_S / 3):
        try:
            raw, etag = store.get_bytes(key)
            if type(mine).model_validate_json(raw).token != mine.token:
                return  # taken over (we were too slow): nothing of ours to renew
            renewed = mine.model_copy(update={"expires_at": time.time() + LOCK_TTL_S})
            store.put_bytes(key, renewed.model_dump_json().encode(), if_match=etag)
        except Exception:  # S3 unreachable for a while: try again at the next tick
            continue
