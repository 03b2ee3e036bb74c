"""What `make demo` prints at the end: the champion, its metrics, where everything landed.

It reads the registry over MLflow's REST API (`tracking.rest_get`): importing mlflow alone
takes seconds, and this command answers a person waiting at a prompt.
"""

from __future__ import annotations

from pydantic import BaseModel
from rich.console import Console
from rich.table import Table

from gglops.errors import ServiceError, UsageError
from gglops.metrics import metric_text
from gglops.settings import Settings
from gglops.tracking import rest_get, run_url

METRIC_TAGS = {"mIoU": "miou", "nIoU": "niou", "Pd": "pd", "Fa": "fa"}  # label → test_* tag


class ChampionSummary(BaseModel):
    version: str
    run_id: str
    metrics: dict[str, float]
    onnx_uri: str | None
    mlflow_url: str
    evaluated: str = "original resolution"  # the eval protocol its test metrics were taken at


def champion_summary(settings: Settings) -> ChampionSummary:
    """Read the `champion` alias of the registered model from the tracking server."""
    uri, name = settings.mlflow_tracking_uri, settings.registered_model
    try:
        mv = rest_get(uri, "registered-models/alias", name=name, alias="champion")
        run = rest_get(uri, "runs/get", run_id=mv["model_version"]["run_id"])
    except LookupError as exc:
        if str(exc) == "RESOURCE_DOES_NOT_EXIST":
            raise UsageError(f"model '{name}' has no champion yet") from None
        raise ServiceError(f"MLflow at {uri}: {exc}") from None
    version = mv["model_version"]
    tags = {t["key"]: t["value"] for t in version.get("tags", [])}
    metrics = {m: float(tags[f"test_{m}"]) for m in METRIC_TAGS.values() if f"test_{m}" in tags}
    size = tags.get("data_image_size")
    resized = tags.get("data_eval_protocol") == "resized"
    return ChampionSummary(
        version=str(version["version"]),
        run_id=version["run_id"],
        metrics=metrics,
        onnx_uri=tags.get("onnx_uri"),
        mlflow_url=run_url(uri, run["run"]["info"]["experiment_id"], version["run_id"]),
        evaluated=f"resized to {size}x{size}" if resized else "original resolution",
    )


def print_champion(summary: ChampionSummary, console: Console | None = None) -> None:
    console = console or Console()
    table = Table(title=f"gglnet champion: version {summary.version}")
    table.add_column(f"metric (test split, {summary.evaluated})")
    table.add_column("value", justify="right")
    for label, metric in METRIC_TAGS.items():
        if metric in summary.metrics:
            table.add_row(label, metric_text(metric, summary.metrics[metric]))
    console.print(table)
    # URLs stay on one line whatever the terminal width: a wrapped URL cannot be clicked.
    lines = {
        "ONNX artifact": summary.onnx_uri or "(not exported)",
        "MLflow run": summary.mlflow_url,
        "DVC": "dvc metrics show / dvc plots show / dvc params diff",
    }
    for label, text in lines.items():
        console.print(f"{label:<14}: {text}", soft_wrap=True, highlight=False)
