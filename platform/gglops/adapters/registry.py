"""The MLflow model registry of `gglnet`: versions, aliases, tags, registration.

Aliases (MLflow 3, no stages): `candidate` (newest registered), `champion` (serving),
`previous` (the champion before the last promotion). Gates and alias moves are
`gglops.stages.promote`; the ONNX release on S3 is `gglops.stages.release`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from gglops.adapters import tracking
from gglops.core.errors import UsageError
from gglops.core.metrics import metric_text
from gglops.core.params import CustomLayout
from gglops.core.settings import Settings

CANDIDATE, CHAMPION, PREVIOUS = "candidate", "champion", "previous"
LINEAGE_TAGS = tracking.LINEAGE_TAGS
EVAL_ARTIFACTS = "evaluation"  # run artifact folder: metrics.json and the plots beside it
RECIPE_PARAMS = ("train.epochs", "train.lr", "train.batch_size", "train.loss", "model.width_mult")
GATES_HEADING = "**Gates**"
CUSTOM_KEYS = ("images", "masks", "mask_suffix", "train", "val", "test")
# Run params copied onto the version: how to rebuild and evaluate its test split.
DATA_PARAMS = {
    "data_layout": "data.layout",
    "data_split": "data.split",
    "data_eval_protocol": "data.eval_protocol",
    "data_image_size": "data.image_size",
    "data_selection": "data.selection",
    **{f"data_custom_{key}": f"data.custom.{key}" for key in CUSTOM_KEYS},
}
METRICS = ("miou", "niou", "pd", "fa")
# A version's scores: its evaluation on test, else the validation metrics of its model's epoch.
SCORE_HEADINGS = {"test": "**Test metrics**", "val": "**Validation metrics** (its epoch)"}
MODEL_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:@(?P<alias>[^/@]+)|/(?P<version>\d+))$")


class RegisterResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    version: str
    run_id: str
    tags: dict[str, str]


class SplitData(BaseModel):
    """Where a version's test split lives and what it must hash to."""

    model_config = ConfigDict(frozen=True)

    root: Path
    layout: str
    split: str | None
    data_hash: str | None
    eval_size: int | None = None  # side of the recorded `resized` protocol; None = original
    custom: CustomLayout | None = None  # the folders of a `custom` layout


@dataclass(frozen=True)
class ModelRegistry:
    """The registered model on one tracking server."""

    client: Any
    name: str
    uri: str

    @classmethod
    def open(cls, settings: Settings) -> ModelRegistry:
        uri = settings.mlflow_tracking_uri
        tracking.probe_tracking_server(uri)
        return cls(client=tracking.client(uri), name=settings.registered_model, uri=uri)

    def alias(self, alias: str) -> str | None:
        return alias_version(self.client, self.name, alias)

    def version(self, version: str) -> Any:
        return _version(self.client, self.name, version)

    def load_model(self, version: str, dst: Path) -> Any:
        """The version's GGLNet (eval mode, CPU), its bundle downloaded into `dst`."""
        from gglops.model.bundle import load_bundle

        uri = f"models:/{self.name}/{version}"
        return load_bundle(tracking.download_model_bundle(uri, self.uri, dst))


def alias_version(client: Any, name: str, alias: str) -> str | None:
    from mlflow.exceptions import MlflowException

    try:
        return str(client.get_model_version_by_alias(name, alias).version)
    except MlflowException:
        return None


def resolve_version(reg: ModelRegistry, ref: str) -> tuple[ModelRegistry, str]:
    """A version number, an alias (candidate, champion, previous) or `models:/NAME@ALIAS` /
    `models:/NAME/N` → (the registry of that model, the version number)."""
    target = ref
    if ref.startswith("models:/"):
        match = MODEL_URI.match(ref)
        if match is None:
            raise UsageError(f"{ref}: expected models:/NAME@ALIAS or models:/NAME/VERSION")
        reg, target = replace(reg, name=match["name"]), match["alias"] or match["version"]
    if target.isdigit():
        reg.version(target)  # one line when there is no such version
        return reg, target
    version = reg.alias(target)
    if version is None:
        raise UsageError(f"model {reg.name} has no alias {target!r} (nor is it a version number)")
    return reg, version


def _version(client: Any, name: str, version: str) -> Any:
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version(name, version)
    except MlflowException:
        raise UsageError(f"model {name} has no version {version}") from None


def run_id_from_result(path: Path) -> str:
    """The run id in a `gglops train --out` JSON file."""
    try:
        return str(json.loads(Path(path).read_text())["run_id"])
    except (OSError, ValueError, KeyError) as exc:
        raise UsageError(f"{path}: not a train result with a run_id ({exc})") from None


def _metrics_from_file(path: Path) -> dict[str, float]:
    try:
        raw = json.loads(Path(path).read_text())
        return {m: float(raw[m]) for m in METRICS}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise UsageError(f"{path}: not a metrics file with {', '.join(METRICS)} ({exc})") from None


def _model_scores(client: Any, run: Any) -> dict[str, float]:
    """The run's test_* metrics (its evaluation), else the val_* metrics of the epoch whose
    model it logged: the run's latest values belong to its last epoch, not to its model."""
    found = run.data.metrics
    test = {f"test_{m}": float(found[f"test_{m}"]) for m in METRICS if f"test_{m}" in found}
    if test:
        return test
    outputs = run.outputs.model_outputs if run.outputs else []
    if not outputs:
        return {}
    step = outputs[-1].step
    scores: dict[str, float] = {}
    for m in METRICS:
        history = client.get_metric_history(run.info.run_id, f"val_{m}")
        scores |= {f"val_{m}": float(h.value) for h in history if h.step == step}
    return scores


def _version_tags(run: Any, scores: dict[str, float]) -> dict[str, str]:
    tags = {k: run.data.tags[k] for k in LINEAGE_TAGS if k in run.data.tags}
    for tag, param in DATA_PARAMS.items():
        value = run.data.params.get(param)
        if value is not None and value != "None":
            tags[tag] = value
    tags["run_id"] = run.info.run_id
    tags |= {key: f"{v:.6g}" for key, v in scores.items()}
    return tags


def register_run(
    run_id: str, settings: Settings, metrics_file: Path | None = None
) -> RegisterResult:
    """Register `runs:/RUN_ID/model` as a new version of the model, tagged, described, alias
    candidate. With `metrics_file` (the evaluate stage's metrics.json) its test metrics go on
    the run and its logged model, and the file and the plots beside it on the run."""
    from mlflow.exceptions import MlflowException

    reg = ModelRegistry.open(settings)
    try:
        run = reg.client.get_run(run_id)
    except MlflowException:
        raise UsageError(f"run {run_id} not found on {reg.uri}") from None
    if metrics_file:
        metrics = _metrics_from_file(metrics_file)
        _log_evaluation(reg.uri, run_id, metrics, metrics_file)
        scores = {f"test_{m}": v for m, v in metrics.items()}
    else:
        scores = _model_scores(reg.client, run)
    tags = _version_tags(run, scores)
    try:
        version = tracking.register_model(reg.uri, run_id, reg.name, tags, _description(run, tags))
    except MlflowException as exc:
        raise UsageError(f"run {run_id}: cannot register its model ({exc.message})") from None
    reg.client.set_registered_model_alias(reg.name, CANDIDATE, version)
    return RegisterResult(name=reg.name, version=version, run_id=run_id, tags=tags)


def _log_evaluation(uri: str, run_id: str, metrics: dict[str, float], metrics_file: Path) -> None:
    """test_* metrics on the run and its model; metrics.json and plots/ as run artifacts."""
    test = {f"test_{m}": v for m, v in metrics.items()}
    tracking.log_metrics(uri, run_id, test, model_id=tracking.run_model_id(uri, run_id))
    plots = Path(metrics_file).parent / "plots"
    tracking.log_artifacts(uri, run_id, [Path(metrics_file), plots], EVAL_ARTIFACTS)


def _description(run: Any, tags: dict[str, str]) -> str:
    """The version's description (Markdown): its data, its recipe, its test metrics."""
    params = run.data.params
    split = f"layout {tags.get('data_layout', 'auto')}, split {tags.get('data_split', 'default')}"
    recipe = ", ".join(f"{k.split('.')[-1]} {params[k]}" for k in RECIPE_PARAMS if k in params)
    scores = {
        heading: ", ".join(
            f"{m} {metric_text(m, float(tags[f'{prefix}_{m}']))}"
            for m in METRICS
            if f"{prefix}_{m}" in tags
        )
        for prefix, heading in SCORE_HEADINGS.items()
    }
    shown = [f"{heading}: {text}" for heading, text in scores.items() if text]
    return "\n\n".join(  # paragraphs: the UI renders the description as Markdown
        [
            f"**Data**: {tags.get('dataset', '?')} at `{tags.get('data_root', '?')}` ({split}), "
            f"data_hash `{tags.get('data_hash', '?')[:12]}`",
            f"**Recipe**: run `{run.info.run_name}` ({recipe}), params_hash "
            f"`{tags.get('params_hash', '?')[:12]}`, git `{tags.get('git_commit', '?')[:12]}`",
            *(shown or [f"{SCORE_HEADINGS['test']}: none recorded"]),
            f"{GATES_HEADING}: not evaluated yet (`gglops promote`)",
        ]
    )


def recorded_split(tags: dict[str, str], data_root: Path | None, version: str) -> SplitData:
    root = data_root or (Path(tags["data_root"]) if tags.get("data_root") else None)
    if root is None:
        raise UsageError(f"version {version} records no data_root tag; pass --data ROOT")
    # A version without the tag was evaluated under the default protocol: original size.
    resized = tags.get("data_eval_protocol") == "resized"
    return SplitData(
        root=root,
        layout=tags.get("data_layout", "auto"),
        split=tags.get("data_split"),
        data_hash=tags.get("data_hash"),
        eval_size=int(tags["data_image_size"]) if resized else None,
        custom=_recorded_custom(tags),
    )


def _recorded_custom(tags: dict[str, str]) -> CustomLayout | None:
    """The `data.custom` section a version was trained with (its tags hold each key)."""
    if tags.get("data_layout") != "custom":
        return None
    fields = {key: tags.get(f"data_custom_{key}") for key in CUSTOM_KEYS}
    return CustomLayout.model_validate({k: v for k, v in fields.items() if v is not None})


def now() -> str:
    """A UTC timestamp for version tags and descriptions."""
    return datetime.now(UTC).isoformat(timespec="seconds")
