"""Resolve a MODEL argument to something local: a bundle directory or an .onnx file.

Accepted: a bundle directory (model.pt + model.json, e.g. a Ray checkpoint), an `.onnx`
file, or an MLflow URI (`runs:/<id>/model`, `models:/gglnet@alias`, `models:/gglnet/3`),
which the caller's `fetch` downloads (`gglops.adapters.tracking.model_fetcher`): the model
package knows no tracking server.
"""

from __future__ import annotations

from collections.abc import Callable
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


def resolve_model(ref: str | Path, fetch: Callable[[str], Path] | None = None) -> ModelRef:
    """A local bundle dir or .onnx path for `ref` (an MLflow URI through `fetch`); one
    UsageError line when it is neither."""
    text = str(ref)
    if text.startswith(MLFLOW_SCHEMES):
        if fetch is None:
            raise UsageError(f"{text}: an MLflow model URI needs a tracking server here")
        return ModelRef(ref=text, kind="mlflow", path=fetch(text))
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
