"""A released version's ONNX bytes from S3, verified against its manifest's sha256.

The release layout is the one `gglops promote` writes (`release.RELEASE_PREFIX`):
`model.onnx`, then `manifest.json` last, so a manifest means a complete upload; a model
file whose hash differs from the manifest's was changed after release and is refused.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from gglops.core.errors import ServiceError, UsageError
from gglops.core.settings import Settings


class ArtifactRefusedError(ServiceError):
    """The version has no complete release, or its model file does not match the manifest."""


@dataclass(frozen=True)
class VerifiedArtifact:
    version: str
    sha256: str
    url: str  # s3://bucket/models/<model>/<version>/model.onnx
    body: bytes


def require_alias_version(settings: Settings, alias: str) -> str:
    """The version the alias points at now; one line when the model has no such alias."""
    from gglops.adapters.registry import ModelRegistry

    version = ModelRegistry.open(settings).alias(alias)
    if version is None:
        raise UsageError(
            f"model {settings.registered_model} has no alias {alias!r}; promote a version first"
        )
    return version


def fetch_verified(settings: Settings, version: str) -> VerifiedArtifact:
    """model.onnx of `version`, if its sha256 matches manifest.json (`ArtifactRefusedError`)."""
    from gglops.adapters.s3 import ArtifactStore, ObjectMissingError
    from gglops.stages.release import RELEASE_PREFIX, release_keys

    store = ArtifactStore(settings)
    prefix = RELEASE_PREFIX.format(model=settings.registered_model, version=version)
    model_key, manifest_key = release_keys(prefix)
    try:
        expected = str(store.get_json(manifest_key)["sha256"])
        body, _ = store.get_bytes(model_key)
    except (ObjectMissingError, KeyError, ValueError):
        raise ArtifactRefusedError(
            f"version {version}: no complete release at {store.url(prefix)} (model.onnx + "
            f"manifest.json); publish it with `gglops promote --version {version}`"
        ) from None
    digest = hashlib.sha256(body).hexdigest()
    if digest != expected:
        raise ArtifactRefusedError(
            f"version {version}: {store.url(model_key)} has sha256 {digest[:12]}…, its manifest "
            f"says {expected[:12]}…; refusing to serve it"
        )
    return VerifiedArtifact(version=version, sha256=digest, url=store.url(model_key), body=body)
