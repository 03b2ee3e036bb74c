"""Runs: an experiment tagged as model training, a run found again by its Ray run name,
lineage tags and the data splits as dataset inputs, tags/params/metrics/artifacts, system
metrics."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from gglops.adapters.tracking.client import client

RUN_NAME_TAG = "ray_run_name"  # a Ray run's MLflow run is found again by it (resume)
# The MLflow 3 UI opens an experiment with this kind in its model-training view, not GenAI.
EXPERIMENT_KIND = {"mlflow.experimentKind": "custom_model_development"}
LINEAGE_TAGS = ("git_commit", "data_hash", "data_root", "params_hash", "dataset")
DATASET_CONTEXT = {"train": "training", "test": "testing"}  # split → mlflow.data.context
DIGEST_CHARS = 32  # MLflow stores a dataset digest in 36 characters: a prefix of data_hash
SYSTEM_METRICS_INTERVAL_S = 5.0
_PARAM_BATCH = 100  # MLflow's limit of params per log_batch call
_PARAM_MAX_CHARS = 6000


class Lineage(BaseModel):
    """Where a run's data and code come from: its tags and its Datasets tab."""

    model_config = ConfigDict(frozen=True)

    git_commit: str
    data_hash: str
    data_root: str
    dataset: str
    params_hash: str
    source: str  # mlflow.source.name: the command that made the run
    splits: dict[str, int]  # split → number of images

    def tags(self) -> dict[str, str]:
        own = {k: str(getattr(self, k)) for k in LINEAGE_TAGS}
        return own | {
            "mlflow.source.git.commit": self.git_commit,
            "mlflow.source.name": self.source,
            "mlflow.source.type": "LOCAL",
        }


def lineage(params: Any, data_root: Path, source: str) -> Lineage:
    """The lineage of a run on `data_root` with `params` (hashes the data once)."""
    from gglops.core.gitinfo import git_commit
    from gglops.data.manifest import build_manifest

    manifest = build_manifest(data_root, params.data.layout, params.data.split, params.data.custom)
    return Lineage(
        git_commit=git_commit(),
        data_hash=manifest.data_hash,
        data_root=str(Path(data_root).absolute()),
        dataset=params.data.dataset,
        params_hash=params.digest(),
        source=source,
        splits=dict(manifest.counts),
    )


def experiment_id(uri: str, name: str) -> str:
    """The experiment's id, created (and tagged as model training) when missing."""
    mlflow = client(uri)
    found = mlflow.get_experiment_by_name(name)
    if found is None:
        return mlflow.create_experiment(name, tags=EXPERIMENT_KIND)
    for key, value in EXPERIMENT_KIND.items():
        if found.tags.get(key) != value:  # experiments made before the tag existed
            mlflow.set_experiment_tag(found.experiment_id, key, value)
    return found.experiment_id


def start_run(
    tracking_uri: str,
    experiment: str,
    run_name: str,
    params: Mapping[str, Any],
    tags: Mapping[str, str],
) -> str:
    """Create a run with params and tags; returns its id."""
    from mlflow.entities import Param

    mlflow = client(tracking_uri)
    run = mlflow.create_run(experiment_id(tracking_uri, experiment), run_name=run_name, tags=tags)
    items = [Param(k, _param_value(v)) for k, v in sorted(params.items())]
    for start in range(0, len(items), _PARAM_BATCH):
        mlflow.log_batch(run.info.run_id, params=items[start : start + _PARAM_BATCH])
    return run.info.run_id


def find_run(tracking_uri: str, experiment: str, ray_run_name: str) -> str | None:
    """The newest run of `experiment` made for the Ray run `ray_run_name`, or None."""
    mlflow = client(tracking_uri)
    found = mlflow.get_experiment_by_name(experiment)
    if found is None:
        return None
    runs = mlflow.search_runs(
        [found.experiment_id],
        filter_string=f"tags.{RUN_NAME_TAG} = '{ray_run_name}'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    return runs[0].info.run_id if runs else None


def open_run(
    tracking_uri: str,
    experiment: str,
    ray_run_name: str,
    params: Mapping[str, Any],
    tags: Mapping[str, str],
    lineage: Lineage | None = None,
    display_name: str | None = None,
) -> str:
    """The MLflow run of a Ray run: the same one, reopened, when the Ray run resumes; else a
    new one with params, tags, lineage tags and the data splits as its dataset inputs."""
    found = find_run(tracking_uri, experiment, ray_run_name)
    if found:
        client(tracking_uri).update_run(found, status="RUNNING")
        return found
    all_tags = {**(lineage.tags() if lineage else {}), **tags, RUN_NAME_TAG: ray_run_name}
    name = display_name or ray_run_name
    run_id = start_run(tracking_uri, experiment, name, params, all_tags)
    if lineage is not None:
        log_datasets(tracking_uri, run_id, lineage)
    return run_id


def log_datasets(tracking_uri: str, run_id: str, lineage: Lineage) -> None:
    """The train and test splits as the run's dataset inputs: a DVC source, the data hash."""
    from mlflow.entities import Dataset, DatasetInput, InputTag

    source = json.dumps(
        {"path": lineage.data_root, "rev": lineage.git_commit, "data_hash": lineage.data_hash}
    )
    inputs = [
        DatasetInput(
            Dataset(
                name=f"{lineage.dataset}-{split}",
                digest=lineage.data_hash[:DIGEST_CHARS],
                source_type="dvc",
                source=source,
                profile=json.dumps({"images": lineage.splits.get(split, 0)}),
            ),
            tags=[InputTag("mlflow.data.context", context)],
        )
        for split, context in DATASET_CONTEXT.items()
    ]
    client(tracking_uri).log_inputs(run_id, datasets=inputs)


def set_tags(tracking_uri: str, run_id: str, tags: Mapping[str, str]) -> None:
    from mlflow.entities import RunTag

    client(tracking_uri).log_batch(run_id, tags=[RunTag(k, v) for k, v in tags.items()])


def log_params(tracking_uri: str, run_id: str, params: Mapping[str, Any]) -> None:
    from mlflow.entities import Param

    items = [Param(k, _param_value(v)) for k, v in sorted(params.items())]
    client(tracking_uri).log_batch(run_id, params=items)


def log_metrics(
    tracking_uri: str,
    run_id: str,
    values: Mapping[str, float],
    step: int = 0,
    model_id: str | None = None,
) -> None:
    """Metrics on the run (and on its logged model when `model_id` is given)."""
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    metrics = [Metric(k, float(v), now, step, model_id=model_id) for k, v in values.items()]
    client(tracking_uri).log_batch(run_id, metrics=metrics)


def log_artifacts(tracking_uri: str, run_id: str, paths: Iterable[Path], folder: str) -> None:
    """Files and directories under `folder` of the run's artifacts."""
    mlflow = client(tracking_uri)
    for path in paths:
        if path.is_dir():
            mlflow.log_artifacts(run_id, str(path), f"{folder}/{path.name}")
        elif path.is_file():
            mlflow.log_artifact(run_id, str(path), folder)


def log_text(tracking_uri: str, run_id: str, text: str, artifact: str) -> None:
    client(tracking_uri).log_text(run_id, text, artifact)


def get_run(tracking_uri: str, run_id: str) -> Any:
    return client(tracking_uri).get_run(run_id)


def child_runs(tracking_uri: str, parent_id: str) -> dict[str, str]:
    """`ray_run_name` → run id of every child run of `parent_id`."""
    mlflow = client(tracking_uri)
    experiment = mlflow.get_run(parent_id).info.experiment_id
    runs = mlflow.search_runs(
        [experiment], filter_string=f"tags.mlflow.parentRunId = '{parent_id}'"
    )
    return {r.data.tags.get(RUN_NAME_TAG, ""): r.info.run_id for r in runs}


def metric_steps(tracking_uri: str, run_id: str, key: str) -> set[int]:
    """Steps at which the run already has `key`."""
    return {int(m.step) for m in client(tracking_uri).get_metric_history(run_id, key)}


def reopen_run(tracking_uri: str, run_id: str) -> None:
    """Mark a finished/failed run as running again (a resumed Ray run continues it)."""
    client(tracking_uri).update_run(run_id, status="RUNNING")


def end_run(tracking_uri: str, run_id: str, status: str = "FINISHED") -> None:
    client(tracking_uri).set_terminated(run_id, status)


def end_if_running(tracking_uri: str, run_id: str, status: str) -> None:
    """End a run unless it already ended (a finished run keeps its end time)."""
    if client(tracking_uri).get_run(run_id).info.status == "RUNNING":
        end_run(tracking_uri, run_id, status)


@contextmanager
def system_metrics(tracking_uri: str, run_id: str, resume: bool = False) -> Iterator[None]:
    """CPU, memory, disk, network (and GPU with nvidia-ml-py) as `system/*` while inside."""
    from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor

    monitor = SystemMetricsMonitor(
        run_id,
        sampling_interval=SYSTEM_METRICS_INTERVAL_S,
        resume_logging=resume,
        tracking_uri=tracking_uri,
    )
    monitor.start()
    try:
        yield
    finally:
        monitor.finish()


def _param_value(value: Any) -> str:
    text = json.dumps(value) if isinstance(value, list | dict) else str(value)
    return text[:_PARAM_MAX_CHARS]
