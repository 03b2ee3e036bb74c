"""The run's model: the model-code pyfunc of `pyfunc.py` (beside this module) with the
`gglnet` package, a signature with free N, H and W, registration, and the bundle downloaded back."""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from gglops.adapters.tracking.client import client, fluent
from gglops.adapters.tracking.runs import log_artifacts
from gglops.core.errors import ServiceError

ONNX_ARTIFACT_DIR = "onnx"  # MLflow artifact path on the version's run: onnx/model.onnx

MODEL_NAME = "model"  # artifact name of the run's model: runs:/<id>/model
BUNDLE_ARTIFACT = "bundle"  # the pyfunc artifact holding the model bundle directory
PYFUNC_CODE = Path(__file__).parent / "pyfunc.py"  # shipped as model code, never imported


class LoggedModel(BaseModel):
    model_config = ConfigDict(frozen=True)

    model_id: str
    model_uri: str  # runs:/<run>/model
    seconds: float


def model_signature(in_channels: int) -> Any:
    """(N, C, H, W) float32 in → (N, 1, H, W) probabilities out; N, H and W free (-1)."""
    import numpy as np
    from mlflow.models import ModelSignature
    from mlflow.types import Schema, TensorSpec

    return ModelSignature(
        inputs=Schema([TensorSpec(np.dtype(np.float32), (-1, in_channels, -1, -1))]),
        outputs=Schema([TensorSpec(np.dtype(np.float32), (-1, 1, -1, -1))]),
    )


def model_requirements() -> list[str]:
    """What the logged model needs besides its shipped `gglnet` code: pinned as installed."""
    import mlflow
    import numpy as np
    import torch

    return [
        f"mlflow=={mlflow.__version__}",
        f"torch=={torch.__version__.split('+')[0]}",
        f"numpy=={np.__version__}",
    ]


def log_model(tracking_uri: str, run_id: str, bundle_dir: Path, step: int = 0) -> LoggedModel:
    """Log `bundle_dir` as the run's model `model`, linked to the metrics logged at `step`
    (the best epoch): the model-code pyfunc of `pyfunc.py` plus the `gglnet` package."""
    import numpy as np

    from gglops.model.bundle import read_meta

    start = time.perf_counter()
    meta = read_meta(bundle_dir)
    example = np.random.default_rng(0).random((1, meta.in_channels, 32, 32), dtype=np.float32)
    with tempfile.TemporaryDirectory() as tmp, fluent(tracking_uri) as mlflow:
        # Only the bundle files: a Ray checkpoint also holds optimizer state we do not serve.
        bundle = Path(tmp) / BUNDLE_ARTIFACT
        bundle.mkdir()
        for name in ("model.pt", "model.json"):
            shutil.copy2(bundle_dir / name, bundle / name)
        # log_model writes into the active run: this one, ended again on leaving (as FINISHED;
        # the caller ends it with its real status afterwards).
        active = mlflow.start_run(run_id=run_id, nested=mlflow.active_run() is not None)
        with active:
            info = _log_pyfunc(mlflow, bundle, meta.in_channels, example, step)
    return LoggedModel(
        model_id=info.model_id,
        model_uri=f"runs:/{run_id}/{MODEL_NAME}",
        seconds=time.perf_counter() - start,
    )


def _log_pyfunc(mlflow: Any, bundle: Path, in_channels: int, example: Any, step: int) -> Any:
    import gglnet

    return mlflow.pyfunc.log_model(
        name=MODEL_NAME,
        python_model=str(PYFUNC_CODE),
        artifacts={BUNDLE_ARTIFACT: str(bundle)},
        code_paths=[str(Path(gglnet.__file__).parent)],
        signature=model_signature(in_channels),
        input_example=example,
        pip_requirements=model_requirements(),
        step=step,
    )


def run_model_id(tracking_uri: str, run_id: str) -> str | None:
    """The id of the model logged by the run (its newest one), or None."""
    outputs = client(tracking_uri).get_run(run_id).outputs
    models = list(outputs.model_outputs) if outputs else []
    return models[-1].model_id if models else None


def register_model(
    tracking_uri: str, run_id: str, name: str, tags: Mapping[str, str], description: str
) -> str:
    """Register the run's model as a new version of `name`; returns the version number."""
    model_id = run_model_id(tracking_uri, run_id)  # MLflow 3 keeps the files with the model
    source = f"models:/{model_id}" if model_id else f"runs:/{run_id}/{MODEL_NAME}"
    with fluent(tracking_uri) as mlflow:
        version = mlflow.register_model(source, name, tags=dict(tags))
    client(tracking_uri).update_model_version(name, version.version, description=description)
    return str(version.version)


def download_model_bundle(
    model_uri: str, tracking_uri: str | None = None, dst: Path | None = None
) -> Path:
    """Local bundle directory of `runs:/<id>/model`, `models:/gglnet@alias`, `models:/gglnet/3`."""
    import mlflow

    if tracking_uri is None:
        from gglops.core.settings import load_settings

        tracking_uri = load_settings().mlflow_tracking_uri
    dst = dst or Path(tempfile.mkdtemp(prefix="gglops-model-"))
    try:
        # MLflow resolves a `models:/` name with its global registry URI whatever is passed
        # here, which falls back to ./mlflow.db when only GGLOPS_* is set: point it at ours.
        with fluent(tracking_uri):
            local = Path(
                mlflow.artifacts.download_artifacts(
                    artifact_uri=model_uri,
                    dst_path=str(dst),
                    tracking_uri=tracking_uri,
                    registry_uri=tracking_uri,
                )
            )
    except mlflow.exceptions.MlflowException as exc:
        raise ServiceError(f"{model_uri}: cannot download the model ({exc.message})") from None
    bundle = local / "artifacts" / BUNDLE_ARTIFACT
    if not (bundle / "model.json").exists():
        raise ServiceError(f"{model_uri}: not a GGLOps model (no {BUNDLE_ARTIFACT} artifact)")
    return bundle


def model_fetcher(tracking_uri: str | None) -> Callable[[str], Path]:
    """`resolve_model`'s download of an MLflow model URI, from this tracking server."""
    return lambda model_uri: download_model_bundle(model_uri, tracking_uri)


def log_onnx(tracking_uri: str, run_id: str, path: Path) -> str:
    """Attach the file to the MLflow run as `onnx/model.onnx`; returns the artifact URI."""
    with tempfile.TemporaryDirectory() as tmp:
        named = Path(tmp) / "model.onnx"  # the artifact's name, whatever the local one is
        shutil.copyfile(path, named)
        log_artifacts(tracking_uri, run_id, [named], ONNX_ARTIFACT_DIR)
    return f"runs:/{run_id}/{ONNX_ARTIFACT_DIR}/model.onnx"
