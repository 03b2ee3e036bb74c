"""Resolve a MODEL argument to something local: a bundle directory or an .onnx file.

Accepted: a bundle directory (model.pt + model.json, e.g. a Ray checkpoint), an `.onnx`
file, or an MLflow URI (`runs:/<id>/model`, `models:/gglnet@alias`, `models:/gglnet/3`),
which is downloaded through `gglops.adapters.tracking.download_model_bundle`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict

from gglops.core.errors import UsageError

MLFLOW_SCHEMES = ("runs:/", "models:/")
ModelKind = Literal["bundle", "onnx", "mlflow"]


class ModelRef(BaseModel):
    """What the user named (`ref`), what it is (`kind`), and the local `path` to load."""

    model_config = ConfigDict(frozen=True)

    ref: str
    kind: ModelKind
    path: Path


def resolve_model(ref: str | Path, tracking_uri: str | None = None) -> ModelRef:
    """A local bundle dir or .onnx path for `ref`; one UsageError line when it is neither."""
    text = str(ref)
    if text.startswith(MLFLOW_SCHEMES):
        from gglops.adapters.tracking import download_model_bundle

        return ModelRef(ref=text, kind="mlflow", path=download_model_bundle(text, tracking_uri))
    path = Path(text)
    if path.suffix == ".onnx":
        if not path.is_file():
            raise UsageError(f"{path}: ONNX file not found")
        return ModelRef(ref=text, kind="onnx", path=path)
    if path.is_dir():
        if not (path / "model.json").is_file() or not (path / "model.pt").is_file():
            raise UsageError(f"{path}: not a model bundle (needs model.pt and model.json)")
        return ModelRef(ref=text, kind="bundle", path=path)
    raise UsageError(
        f"{text}: no such model (expected a bundle directory, an .onnx file, "
        "runs:/<id>/model or models:/gglnet@alias)"
    )
