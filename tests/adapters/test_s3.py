"""gglops.adapters.s3 against the real SeaweedFS S3: verified uploads, immutable releases,
the promotion lease, and one-line errors for a dead endpoint or wrong keys."""

from __future__ import annotations

import json
import socket
import time
import uuid
from pathlib import Path

import pytest

from gglops.adapters.s3 import (
    ArtifactStore,
    LeaseBusyError,
    LeaseInfo,
    S3Url,
    lease,
)
from gglops.core.errors import ServiceError, UsageError
from gglops.core.files import sha256_file
from gglops.core.settings import load_settings
from gglops.stages.release import publish


@pytest.fixture
def store(stack_env) -> ArtifactStore:
    return ArtifactStore(load_settings())


@pytest.fixture
def prefix() -> str:
    return f"tests/storage/{uuid.uuid4().hex[:8]}"


def test_s3_url_parsing() -> None:
    assert S3Url.parse("s3://b/models/x.onnx") == S3Url("b", "models/x.onnx")
    for bad in ("b/key", "s3://bucket", "s3:///key"):
        with pytest.raises(UsageError, match="s3://bucket/key"):
            S3Url.parse(bad)


def test_publish_is_verified_idempotent_and_immutable(store, prefix, tmp_path: Path) -> None:
    model = tmp_path / "model.onnx"
    model.write_bytes(b"onnx-bytes" * 1000)
    sha = sha256_file(model)
    manifest = json.dumps({"sha256": sha}).encode()
    first = publish(store, prefix, model, sha, manifest)
    assert first.uploaded and store.head(f"{prefix}/model.onnx").size == 10_000
    stamp = store.head(f"{prefix}/manifest.json")
    assert not publish(store, prefix, model, sha, manifest).uploaded
    assert store.head(f"{prefix}/manifest.json") == stamp

    model.write_bytes(b"something else")
    with pytest.raises(ServiceError, match="immutable"):
        publish(store, prefix, model, sha256_file(model), manifest)
    assert store.sha256(f"{prefix}/model.onnx") == sha  # the release was not touched


def test_lease_is_exclusive_and_expires(store, prefix) -> None:
    key = f"{prefix}/lock.json"
    busy = pytest.raises(LeaseBusyError, match="held by first")
    with lease(store, key, "first", ttl_s=60), busy, lease(store, key, "second", 60):
        pass
    assert not store.exists(key)  # released

    stale = LeaseInfo(token="old", holder="crashed", expires_at=time.time() - 1)
    store.put_bytes(key, stale.model_dump_json().encode())
    with lease(store, key, "new", ttl_s=60) as mine:
        held = LeaseInfo.model_validate_json(store.get_bytes(key)[0])
        assert held.token == mine.token and held.holder == "new"


def test_unreachable_endpoint_is_one_line_naming_the_setting(monkeypatch, reliability) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("GGLOPS_S3_ENDPOINT_URL", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("GGLOPS_AWS_ACCESS_KEY_ID", "k")
    monkeypatch.setenv("GGLOPS_AWS_SECRET_ACCESS_KEY", "s")
    start = time.perf_counter()
    with pytest.raises(ServiceError, match="GGLOPS_S3_ENDPOINT_URL") as info:
        ArtifactStore(load_settings()).exists("x")
    elapsed = time.perf_counter() - start
    assert elapsed < 20 and "\n" not in str(info.value)
    reliability("S3 endpoint unreachable", f"ServiceError after {elapsed:.1f} s: {info.value}")


def test_wrong_keys_name_the_setting_not_the_secret(stack_env, monkeypatch) -> None:
    secret = "bad-" + uuid.uuid4().hex
    monkeypatch.setenv("GGLOPS_AWS_SECRET_ACCESS_KEY", secret)
    with pytest.raises(ServiceError, match="GGLOPS_AWS_SECRET_ACCESS_KEY") as info:
        ArtifactStore(load_settings()).put_bytes("tests/x", b"x")
    assert secret not in str(info.value) and stack_env.secret_key not in str(info.value)
