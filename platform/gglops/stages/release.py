"""Release of a registered version: ONNX export with parity on its test split, then a
verified upload to S3 (model.onnx first, manifest.json last), the file on the version's run
and its hash on the version. The one way an ONNX model reaches S3.

A reader that sees the manifest sees a complete, verified model. Releases are immutable: an
existing manifest with the same sha256 makes a re-release a no-op, a different one is refused.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict

from gglops.adapters.registry import (
    DATA_PARAMS,
    LINEAGE_TAGS,
    METRICS,
    ModelRegistry,
    now,
    recorded_split,
)
from gglops.adapters.s3 import ArtifactStore, ObjectMissingError
from gglops.core.errors import ServiceError, UsageError
from gglops.core.settings import Settings
from gglops.model.export import OnnxArtifact

if TYPE_CHECKING:
    import numpy as np

    from gglops.data.evalsplit import EvalSplit

RELEASE_PREFIX = "models/{model}/{version}"
RELEASE_FILES = ("model.onnx", "manifest.json")


def release_keys(prefix: str) -> tuple[str, str]:
    """The S3 keys of a release folder: (model.onnx, manifest.json)."""
    model, manifest = (f"{prefix}/{name}" for name in RELEASE_FILES)
    return model, manifest


class ReleaseManifest(BaseModel):
    """manifest.json beside model.onnx: identity, interface, metrics, lineage."""

    model_config = ConfigDict(frozen=True)

    name: str
    version: str
    run_id: str
    sha256: str
    size: int
    opset: int
    exporter: str
    inputs: dict[str, list[str | int]]
    outputs: dict[str, list[str | int]]
    parity_max_abs_diff: float
    metrics: dict[str, float]
    lineage: dict[str, str]
    created_at: str


class Release(BaseModel):
    model_config = ConfigDict(frozen=True)

    version: str
    onnx_uri: str
    manifest_uri: str
    sha256: str
    uploaded: bool


class PublishOutcome(BaseModel):
    model_config = ConfigDict(frozen=True)

    model_url: str
    manifest_url: str
    uploaded: bool  # False: the same artifact was already there (idempotent no-op)


def publish(
    store: ArtifactStore, prefix: str, model_file: Path, sha256: str, manifest: bytes
) -> PublishOutcome:
    """Upload `<prefix>/model.onnx`, verify it, then `<prefix>/manifest.json` (see above)."""
    model_key, manifest_key = release_keys(prefix)
    outcome = PublishOutcome(
        model_url=store.url(model_key), manifest_url=store.url(manifest_key), uploaded=True
    )
    try:
        existing = store.get_json(manifest_key).get("sha256")
    except ObjectMissingError:
        existing = None
    if existing == sha256 and store.exists(model_key):
        return outcome.model_copy(update={"uploaded": False})
    if existing is not None and existing != sha256:
        raise ServiceError(
            f"{outcome.manifest_url} already holds a different model (sha256 {existing[:12]}…); "
            "released versions are immutable"
        )
    store.put_file(model_key, model_file, sha256)
    store.put_bytes(manifest_key, manifest)
    return outcome


def publish_release(
    reg: ModelRegistry,
    store: ArtifactStore,
    version: str,
    model: Any,
    test: EvalSplit,
    metrics: dict[str, float],
    phase: Callable[[str], None] = lambda _: None,
) -> Release:
    """Export `model` (the version's, loaded) + parity on `test` at original size, publish to
    S3, log on the run, tag the version; `phase(name)` as each part starts."""
    from gglops.adapters.tracking import log_onnx
    from gglops.model.export import build_artifact

    mv = reg.version(version)
    with tempfile.TemporaryDirectory(prefix="gglops-onnx-") as tmp:
        source = f"test split of {test.index.root}"
        phase(f"exporting v{version} to ONNX, parity on {len(test.index.test)} test images")
        artifact = build_artifact(model, Path(tmp) / "model.onnx", test.originals(), source)
        manifest = _manifest(reg.name, mv, artifact, metrics)
        prefix = RELEASE_PREFIX.format(model=reg.name, version=version)
        body = manifest.model_dump_json(indent=2).encode()
        phase(f"uploading to {store.url(prefix)}")
        outcome = publish(store, prefix, artifact.path, artifact.sha256, body)
        if outcome.uploaded:
            log_onnx(reg.uri, mv.run_id, artifact.path)
    reg.client.set_model_version_tag(reg.name, version, "onnx_sha256", artifact.sha256)
    reg.client.set_model_version_tag(reg.name, version, "onnx_uri", outcome.model_url)
    return Release(
        version=version,
        onnx_uri=outcome.model_url,
        manifest_uri=outcome.manifest_url,
        sha256=artifact.sha256,
        uploaded=outcome.uploaded,
    )


def _manifest(
    name: str, mv: Any, artifact: OnnxArtifact, metrics: dict[str, float]
) -> ReleaseManifest:
    tags = dict(mv.tags)
    return ReleaseManifest(
        name=name,
        version=str(mv.version),
        run_id=mv.run_id,
        sha256=artifact.sha256,
        size=artifact.size,
        opset=artifact.opset,
        exporter=artifact.exporter,
        inputs=artifact.inputs,
        outputs=artifact.outputs,
        parity_max_abs_diff=artifact.parity.max_abs_diff,
        metrics=metrics,
        lineage={k: tags[k] for k in (*LINEAGE_TAGS, *DATA_PARAMS) if k in tags},
        created_at=now(),
    )


def release_version(version: str, settings: Settings, data_root: Path | None = None) -> Release:
    """(Re-)publish a version's ONNX artifact, no gates, no alias moves (idempotent).

    The manifest carries the metrics recorded on the version (test_* tags).
    """
    from gglops.data.evalsplit import EvalSplit

    reg = ModelRegistry.open(settings)
    tags = dict(reg.version(version).tags)
    data = recorded_split(tags, data_root, version)
    metrics = {m: float(tags[f"test_{m}"]) for m in METRICS if f"test_{m}" in tags}
    store = ArtifactStore(settings)
    test = EvalSplit.load(data.root, data.layout, data.split, custom=data.custom)
    with tempfile.TemporaryDirectory(prefix="gglops-release-") as tmp:
        model = reg.load_model(version, Path(tmp))
        return publish_release(reg, store, version, model, test, metrics)


def export_to(ref: str, out: str, settings: Settings, data_root: Path | None = None) -> Any:
    """`gglops export MODEL --out OUT`: a release on S3 for an s3:// URI, else a local file
    (ONNX on local disk, parity checked)."""
    from gglops.model.export import build_artifact

    if out.startswith("s3://"):
        return export_to_s3(ref, out, settings, data_root)
    model, images, source = export_inputs(ref, settings, data_root)
    return build_artifact(model, Path(out), images, source)


def export_to_s3(ref: str, url: str, settings: Settings, data_root: Path | None = None) -> Any:
    """`gglops export MODEL --out s3://BUCKET/PREFIX/model.onnx`: the export, then `publish`
    (verified model.onnx, then a manifest.json beside it; an existing different model there is
    refused, the same one is a no-op). Returns the OnnxArtifact with the S3 URL as its path."""
    from gglops.adapters.s3 import S3Url
    from gglops.model.export import build_artifact

    target = S3Url.parse(url)
    prefix, _, name = target.key.rpartition("/")
    if name != "model.onnx" or not prefix:
        raise UsageError(f"--out {url}: name the file s3://BUCKET/PREFIX/model.onnx (a release "
                         "folder holds model.onnx and manifest.json)")  # fmt: skip
    model, images, source = export_inputs(ref, settings, data_root)
    with tempfile.TemporaryDirectory(prefix="gglops-export-") as tmp:
        artifact = build_artifact(model, Path(tmp) / "model.onnx", images, source)
        manifest = {
            **artifact.model_dump(mode="json", exclude={"path"}),
            "model": ref,
            "created_at": now(),
        }
        body = json.dumps(manifest, indent=2, sort_keys=True).encode()
        publish(
            ArtifactStore(settings, target.bucket), prefix, artifact.path, artifact.sha256, body
        )
    return artifact.model_copy(update={"path": Path(url)})


def export_inputs(
    ref: str, settings: Settings, data_root: Path | None = None
) -> tuple[Any, Iterable[np.ndarray] | None, str]:
    """The model behind MODEL and the images its parity is checked on (test split or synthetic)."""
    from gglops.adapters.tracking import model_fetcher
    from gglops.model.bundle import load_bundle
    from gglops.model.reference import resolve_model

    model_ref = resolve_model(ref, model_fetcher(settings.mlflow_tracking_uri))
    if model_ref.kind == "onnx":
        raise UsageError(f"{ref}: already an ONNX file; export takes a checkpoint or MLflow model")
    if data_root is None:
        return load_bundle(model_ref.path), None, "synthetic inputs"
    from gglops.data.evalsplit import EvalSplit

    images = EvalSplit.load(data_root).originals()
    return load_bundle(model_ref.path), images, f"test split of {data_root}"
