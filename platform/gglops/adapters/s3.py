"""S3 object storage (boto3) for released artifacts: retries, one-line errors, verified uploads.

Every call goes through `ArtifactStore._call`, which retries transient failures (botocore's
"standard" retry mode, plus a short bounded loop of our own for refused connections, which
botocore gives up on quickly) and turns what remains into a `ServiceError` naming the
setting to fix. Keys are never part of a message.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel

from gglops.core.errors import ServiceError, UsageError
from gglops.core.settings import Settings

T = TypeVar("T")

ENDPOINT_SETTING = "GGLOPS_S3_ENDPOINT_URL"
BUCKET_SETTING = "GGLOPS_S3_BUCKET"
KEY_SETTINGS = "GGLOPS_AWS_ACCESS_KEY_ID / GGLOPS_AWS_SECRET_ACCESS_KEY (or AWS_* / profile)"
CONNECT_TIMEOUT_S = 3.0
READ_TIMEOUT_S = 60.0
BOTO_MAX_ATTEMPTS = 3
OWN_RETRIES = 1  # extra rounds for refused/dropped connections, after botocore's own
BACKOFF_S = 0.5
_CHUNK = 1 << 20

# S3 error codes → what the user should fix.
_CREDENTIAL_CODES = {"SignatureDoesNotMatch", "InvalidAccessKeyId", "AccessDenied", "403"}
_MISSING_CODES = {"NoSuchKey", "404", "NotFound"}
PRECONDITION_CODES = {"PreconditionFailed", "412", "ConditionalRequestConflict"}


class ObjectMissingError(Exception):
    """The object does not exist (callers decide whether that is an error)."""


class PreconditionFailedError(Exception):
    """A conditional write lost: the object exists (If-None-Match) or changed (If-Match)."""


@dataclass(frozen=True)
class S3Url:
    bucket: str
    key: str

    @classmethod
    def parse(cls, url: str) -> S3Url:
        if not url.startswith("s3://"):
            raise UsageError(f"{url}: expected an s3://bucket/key URI")
        bucket, _, key = url[len("s3://") :].partition("/")
        if not bucket or not key:
            raise UsageError(f"{url}: expected an s3://bucket/key URI")
        return cls(bucket, key)

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.key}"


@dataclass(frozen=True)
class ObjectInfo:
    size: int
    etag: str
    last_modified: str


def configured_keys(settings: Settings) -> tuple[str, str] | None:
    """Explicit GGLOPS_AWS_* keys, else the local stack's own keys when the endpoint is the
    local stack's, else None."""
    if settings.aws_access_key_id and settings.aws_secret_access_key:
        keys = (settings.aws_access_key_id, settings.aws_secret_access_key)
        return keys[0].get_secret_value(), keys[1].get_secret_value()
    from gglops.core.credentials import local_stack_keys

    return local_stack_keys(settings.stack_dir, settings.s3_endpoint_url)


def s3_keys(settings: Settings) -> tuple[str, str] | None:
    """The one rule for S3 keys, boto3's and pyarrow's alike: `configured_keys` (GGLOPS_AWS_*
    keys, else the local stack's keys for its own endpoint), else the AWS_* variables, else
    None (the library's own chain: profiles, instance roles)."""
    keys = configured_keys(settings)
    if keys is not None:
        return keys
    access, secret = os.environ.get("AWS_ACCESS_KEY_ID"), os.environ.get("AWS_SECRET_ACCESS_KEY")
    return (access, secret) if access and secret else None


def make_client(settings: Settings) -> Any:
    """A boto3 S3 client on the configured endpoint, with bounded timeouts and retries."""
    import boto3
    from botocore.config import Config

    config = Config(
        retries={"max_attempts": BOTO_MAX_ATTEMPTS, "mode": "standard"},
        connect_timeout=CONNECT_TIMEOUT_S,
        read_timeout=READ_TIMEOUT_S,
        signature_version="s3v4",
        s3={"addressing_style": "path"},
    )
    keys = s3_keys(settings)
    creds = {"aws_access_key_id": keys[0], "aws_secret_access_key": keys[1]} if keys else {}
    return boto3.client(
        "s3",
        endpoint_url=settings.s3_endpoint_url,
        region_name=settings.s3_region,
        config=config,
        **creds,
    )


class ArtifactStore:
    """One bucket on one endpoint; every method raises ServiceError with one clear line."""

    def __init__(self, settings: Settings, bucket: str | None = None) -> None:
        self.endpoint = settings.s3_endpoint_url
        self.bucket = bucket or settings.s3_bucket
        self._client = make_client(settings)

    def url(self, key: str) -> str:
        return str(S3Url(self.bucket, key))

    def head(self, key: str) -> ObjectInfo:
        """Size/ETag/LastModified of `key`; raises ObjectMissingError when it does not exist."""
        meta = self._call(f"stat {self.url(key)}", self._client.head_object, Key=key)
        return ObjectInfo(
            size=int(meta["ContentLength"]),
            etag=meta["ETag"],
            last_modified=meta["LastModified"].isoformat(),
        )

    def exists(self, key: str) -> bool:
        try:
            self.head(key)
        except ObjectMissingError:
            return False
        return True

    def get_bytes(self, key: str) -> tuple[bytes, str]:
        """Body and ETag of `key`; raises ObjectMissingError when it does not exist."""
        resp = self._call(f"read {self.url(key)}", self._client.get_object, Key=key)
        return resp["Body"].read(), resp["ETag"]

    def get_json(self, key: str) -> Any:
        body, _ = self.get_bytes(key)
        return json.loads(body)

    def sha256(self, key: str) -> str:
        """sha256 of the stored object, streamed back from S3 (upload verification)."""
        resp = self._call(f"read {self.url(key)}", self._client.get_object, Key=key)
        digest = hashlib.sha256()
        for chunk in resp["Body"].iter_chunks(_CHUNK):
            digest.update(chunk)
        return digest.hexdigest()

    def put_bytes(
        self, key: str, body: bytes, *, if_none_match: bool = False, if_match: str | None = None
    ) -> str:
        """Write `body`; conditional writes raise PreconditionFailedError when they lose. → ETag."""
        extra: dict[str, str] = {}
        if if_none_match:
            extra["IfNoneMatch"] = "*"
        if if_match:
            extra["IfMatch"] = if_match
        resp = self._call(
            f"write {self.url(key)}", self._client.put_object, Key=key, Body=body, **extra
        )
        return resp["ETag"]

    def put_file(self, key: str, path: Path, sha256: str | None = None) -> None:
        """Upload a file, then check its size and sha256 as the server stores it against
        `sha256` (the caller's, e.g. a manifest's: the file is not hashed again) or the file's."""
        # bytes, not a file handle: a retried request must send the body again from the start
        body = Path(path).read_bytes()
        local_sha, size = sha256 or hashlib.sha256(body).hexdigest(), len(body)
        self._call(f"upload {path} to {self.url(key)}", self._client.put_object, Key=key, Body=body)
        stored = self.head(key)
        if stored.size != size or self.sha256(key) != local_sha:
            raise ServiceError(f"{self.url(key)}: uploaded object differs from {path}; retry")

    def delete(self, key: str) -> None:
        self._call(f"delete {self.url(key)}", self._client.delete_object, Key=key)

    def _call(self, what: str, fn: Callable[..., T], **kw: Any) -> T:
        from botocore.exceptions import (
            ClientError,
            ConnectionClosedError,
            EndpointConnectionError,
            NoCredentialsError,
            ReadTimeoutError,
        )

        transient = (EndpointConnectionError, ConnectionClosedError, ReadTimeoutError)
        args = {"Bucket": self.bucket, **kw}
        for attempt in range(OWN_RETRIES + 1):
            try:
                return fn(**args)
            except transient:
                if attempt == OWN_RETRIES:
                    raise ServiceError(
                        f"S3 endpoint {self.endpoint} is unreachable ({what}); start it "
                        f"(gglops stack up) or set {ENDPOINT_SETTING}"
                    ) from None
                time.sleep(BACKOFF_S * 2**attempt)
            except NoCredentialsError:
                raise ServiceError(f"no S3 credentials to {what}; set {KEY_SETTINGS}") from None
            except ClientError as exc:
                raise self._client_error(exc, what) from None
        raise AssertionError("unreachable")

    def _client_error(self, exc: Any, what: str) -> Exception:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        if code in _MISSING_CODES:
            return ObjectMissingError(what)
        if code in PRECONDITION_CODES:
            return PreconditionFailedError(what)
        if code in _CREDENTIAL_CODES:
            return ServiceError(
                f"S3 at {self.endpoint} refused our credentials ({code}) to {what}; "
                f"check {KEY_SETTINGS}"
            )
        if code == "NoSuchBucket":
            return ServiceError(f"S3 bucket {self.bucket!r} does not exist; set {BUCKET_SETTING}")
        message = exc.response.get("Error", {}).get("Message", "")
        return ServiceError(f"S3 error {code} to {what}: {message}")


# --- a lease: one holder at a time, through S3 conditional writes -------------------------


class LeaseInfo(BaseModel):
    token: str
    holder: str
    expires_at: float


class LeaseBusyError(ServiceError):
    """Someone else holds the lease."""


@contextmanager
def lease(store: ArtifactStore, key: str, holder: str, ttl_s: float) -> Iterator[LeaseInfo]:
    """Hold `key` exclusively (S3 If-None-Match create, If-Match takeover when expired).

    The lease expires after `ttl_s`, so a crashed holder blocks others only that long.
    """
    mine = LeaseInfo(token=uuid.uuid4().hex, holder=holder, expires_at=time.time() + ttl_s)
    _acquire(store, key, mine)
    try:
        yield mine
    finally:
        _release(store, key, mine)


def _acquire(store: ArtifactStore, key: str, mine: LeaseInfo) -> None:
    body = mine.model_dump_json().encode()
    try:
        store.put_bytes(key, body, if_none_match=True)
        return
    except PreconditionFailedError:
        pass
    try:
        raw, etag = store.get_bytes(key)
    except ObjectMissingError:  # released between our two calls: one more try, no loop
        store.put_bytes(key, body, if_none_match=True)
        return
    held = LeaseInfo.model_validate_json(raw)
    if held.token == mine.token:  # our own create, retried after a dropped connection
        return
    if held.expires_at > time.time():
        until = datetime.fromtimestamp(held.expires_at, UTC).strftime("%H:%M:%S UTC")
        raise LeaseBusyError(f"held by {held.holder} until {until} ({store.url(key)})")
    try:
        store.put_bytes(key, body, if_match=etag)  # take over an expired lease, atomically
    except PreconditionFailedError:
        raise LeaseBusyError(f"taken over by another process ({store.url(key)})") from None


def _release(store: ArtifactStore, key: str, mine: LeaseInfo) -> None:
    """Delete the lease if it is still ours; an unreachable S3 leaves it to expire."""
    try:
        raw, _ = store.get_bytes(key)
        if LeaseInfo.model_validate_json(raw).token == mine.token:
            store.delete(key)
    except (ObjectMissingError, ServiceError):
        pass
