"""MLflow integration: runs, per-epoch metrics that survive a tracking outage, the model.

Ray Train V2 has no MLflow callback, so this is a small explicit API instead of a global
side effect: the driver creates the run (`start_run`), rank 0 of the training job delivers
per-epoch metrics through a `MetricSink` (buffered in memory and in a JSONL file while the
server is down, retried at every epoch and at the end), and the driver logs the best
checkpoint as a pyfunc model named `model` (`log_model_bundle`).
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
from mlflow.entities import Metric, Param, RunTag
from mlflow.tracking import MlflowClient
from pydantic import BaseModel, ConfigDict

from gglops.errors import ServiceError

MODEL_NAME = "model"  # artifact name of the run's model: runs:/<id>/model
BUNDLE_ARTIFACT = "bundle"  # the pyfunc artifact holding the model bundle directory
TRACKING_SETTING = "GGLOPS_MLFLOW_TRACKING_URI"
_PARAM_BATCH = 100  # MLflow's limit of params per log_batch call
_PARAM_MAX_CHARS = 6000
SINK_PROBE_TIMEOUT_S = 2.0


class MetricPoint(BaseModel):
    """One metric value at one step (epoch), as buffered and delivered."""

    model_config = ConfigDict(frozen=True)

    key: str
    value: float
    step: int
    timestamp_ms: int


def health_problem(uri: str, timeout_s: float = 3.0) -> str | None:
    """Why an HTTP tracking server does not answer /health (None: it does, or not HTTP)."""
    if not uri.startswith(("http://", "https://")):
        return None  # file stores and databricks URIs have no /health endpoint
    try:
        with urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=timeout_s) as resp:
            return None if resp.status == 200 else f"HTTP {resp.status}"
    except (urllib.error.URLError, OSError) as exc:
        return str(getattr(exc, "reason", exc))


def probe_tracking_server(uri: str, timeout_s: float = 3.0) -> None:
    """Fail fast with one line when an HTTP tracking server does not answer /health."""
    reason = health_problem(uri, timeout_s)
    if reason is None:
        return
    raise ServiceError(
        f"MLflow tracking server {uri} is unreachable ({reason}); "
        f"start it (gglops stack up) or set {TRACKING_SETTING}"
    )


def start_run(
    tracking_uri: str,
    experiment: str,
    run_name: str,
    params: Mapping[str, Any],
    tags: Mapping[str, str],
) -> str:
    """Create a run with params and tags; returns its id."""
    client = MlflowClient(tracking_uri=tracking_uri)
    found = client.get_experiment_by_name(experiment)
    experiment_id = found.experiment_id if found else client.create_experiment(experiment)
    run = client.create_run(experiment_id, run_name=run_name, tags=dict(tags))
    items = [Param(k, _param_value(v)) for k, v in sorted(params.items())]
    for start in range(0, len(items), _PARAM_BATCH):
        client.log_batch(run.info.run_id, params=items[start : start + _PARAM_BATCH])
    return run.info.run_id


def find_run(tracking_uri: str, experiment: str, tag: str, value: str) -> str | None:
    """The newest run of `experiment` whose tag `tag` equals `value` (resume), or None."""
    client = MlflowClient(tracking_uri=tracking_uri)
    found = client.get_experiment_by_name(experiment)
    if found is None:
        return None
    runs = client.search_runs(
        [found.experiment_id],
        filter_string=f"tags.{tag} = '{value}'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    return runs[0].info.run_id if runs else None


def set_tags(tracking_uri: str, run_id: str, tags: Mapping[str, str]) -> None:
    MlflowClient(tracking_uri=tracking_uri).log_batch(
        run_id, tags=[RunTag(k, v) for k, v in tags.items()]
    )


def reopen_run(tracking_uri: str, run_id: str) -> None:
    """Mark a finished/failed run as running again (a resumed Ray run continues it)."""
    MlflowClient(tracking_uri=tracking_uri).update_run(run_id, status="RUNNING")


def end_run(tracking_uri: str, run_id: str, status: str = "FINISHED") -> None:
    MlflowClient(tracking_uri=tracking_uri).set_terminated(run_id, status)


def _param_value(value: Any) -> str:
    text = json.dumps(value) if isinstance(value, list | dict) else str(value)
    return text[:_PARAM_MAX_CHARS]


class MetricSink:
    """Delivers metrics to one run; what the server refuses stays pending and is retried.

    Pending points live in memory and in `pending_file` (JSONL, rewritten atomically), so a
    tracking outage never fails training and never loses a value that was measured.
    """

    def __init__(
        self,
        tracking_uri: str,
        run_id: str,
        pending_file: Path,
        pending: Iterable[MetricPoint] = (),
    ) -> None:
        self._uri = tracking_uri
        self._client = MlflowClient(tracking_uri=tracking_uri)
        self._run_id = run_id
        self._file = pending_file
        self._pending: list[MetricPoint] = list(pending)

    @property
    def pending(self) -> list[MetricPoint]:
        return list(self._pending)

    def log(self, values: Mapping[str, float], step: int) -> int:
        """Queue `values` at `step` and try to deliver everything queued; returns what is left."""
        now = int(time.time() * 1000)
        self._pending += [
            MetricPoint(key=k, value=v, step=step, timestamp_ms=now) for k, v in values.items()
        ]
        return self.flush()

    def flush(self) -> int:
        """Try to deliver every pending point; returns how many are still pending."""
        # The quick probe first: MLflow's own retries against a dead server take minutes.
        if self._pending and health_problem(self._uri, SINK_PROBE_TIMEOUT_S) is None:
            try:
                self._client.log_batch(
                    self._run_id,
                    metrics=[Metric(p.key, p.value, p.timestamp_ms, p.step) for p in self._pending],
                )
                self._pending = []
            except Exception:  # any outage (connection, 5xx): keep the points, train on
                pass
        self._persist()
        return len(self._pending)

    def _persist(self) -> None:
        if not self._pending:
            self._file.unlink(missing_ok=True)
            return
        self._file.parent.mkdir(parents=True, exist_ok=True)
        tmp = self._file.with_name(f".{self._file.name}.tmp")
        tmp.write_text("".join(p.model_dump_json() + "\n" for p in self._pending))
        tmp.replace(self._file)


def read_pending(pending_file: Path) -> list[MetricPoint]:
    """Points a previous process could not deliver (empty when the file is absent)."""
    if not pending_file.exists():
        return []
    lines = pending_file.read_text().splitlines()
    return [MetricPoint.model_validate_json(line) for line in lines if line.strip()]


class BundleModel(mlflow.pyfunc.PythonModel):
    """pyfunc wrapper: loads the bundle from the model's artifacts, returns probabilities.

    Input (N, 3, H, W) float32 in [0, 1]; output (N, 1, H, W) probabilities, any H, W
    (padded to a multiple of 16 and cropped back, as in evaluation).
    """

    def load_context(self, context: Any) -> None:
        from gglops.inference import torch_prob_fn
        from gglops.modelio import load_bundle

        self._fn = torch_prob_fn(load_bundle(Path(context.artifacts[BUNDLE_ARTIFACT])))

    def predict(self, context: Any, model_input: np.ndarray, params: Any = None) -> np.ndarray:
        from gglops.inference import predict_probs

        images = np.asarray(model_input, dtype=np.float32)
        return np.stack([predict_probs(self._fn, image)[None] for image in images])


def log_model_bundle(
    tracking_uri: str, run_id: str, bundle_dir: Path, example: np.ndarray
) -> float:
    """Log `bundle_dir` as the run's pyfunc model `model`; returns the seconds it took."""
    import torch
    from mlflow.models import infer_signature

    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        # Only the bundle files: a Ray checkpoint also holds optimizer state we do not serve.
        bundle = Path(tmp) / BUNDLE_ARTIFACT
        bundle.mkdir()
        for name in ("model.pt", "model.json"):
            shutil.copy2(bundle_dir / name, bundle / name)
        # A separate instance computes the example output: the logged one must stay unloaded
        # (it is pickled, and a loaded one would carry the weights twice).
        probe = BundleModel()
        probe.load_context(_Context({BUNDLE_ARTIFACT: str(bundle)}))
        output = probe.predict(None, example)
        mlflow.set_tracking_uri(tracking_uri)
        with mlflow.start_run(run_id=run_id, nested=mlflow.active_run() is not None):
            mlflow.pyfunc.log_model(
                name=MODEL_NAME,
                python_model=BundleModel(),
                artifacts={BUNDLE_ARTIFACT: str(bundle)},
                signature=infer_signature(example, output),
                input_example=example,
                pip_requirements=[
                    f"torch=={torch.__version__.split('+')[0]}",
                    f"numpy=={np.__version__}",
                    f"mlflow=={mlflow.__version__}",
                ],
            )
    return time.perf_counter() - start


class _Context:
    """The part of mlflow's PythonModelContext that `BundleModel.load_context` reads."""

    def __init__(self, artifacts: dict[str, str]) -> None:
        self.artifacts = artifacts


def download_model_bundle(
    model_uri: str, tracking_uri: str | None = None, dst: Path | None = None
) -> Path:
    """Local bundle directory of `runs:/<id>/model`, `models:/gglnet@alias`, `models:/gglnet/3`."""
    if tracking_uri is None:
        from gglops.settings import load_settings

        tracking_uri = load_settings().mlflow_tracking_uri
    dst = dst or Path(tempfile.mkdtemp(prefix="gglops-model-"))
    try:
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
