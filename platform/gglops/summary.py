"""What `make demo` prints at the end: the champion, its metrics, where everything landed."""

from __future__ import annotations

from pydantic import BaseModel
from rich.console import Console
from rich.table import Table

from gglops.errors import ServiceError, UsageError
from gglops.settings import Settings

METRIC_TAGS = {"mIoU": "test_miou", "nIoU": "test_niou", "Pd": "test_pd", "Fa (×1e-6)": "test_fa"}


class ChampionSummary(BaseModel):
    version: str
    run_id: str
    metrics: dict[str, float]
    onnx_uri: str | None
    mlflow_url: str
    evaluated: str = "original resolution"  # the eval protocol its test metrics were taken at


def champion_summary(settings: Settings) -> ChampionSummary:
    """Read the `champion` alias of the registered model from the tracking server."""
    import mlflow
    from mlflow.exceptions import MlflowException

    client = mlflow.MlflowClient(tracking_uri=settings.mlflow_tracking_uri)
    try:
        mv = client.get_model_version_by_alias(settings.registered_model, "champion")
    except MlflowException as exc:
        if "RESOURCE_DOES_NOT_EXIST" in str(exc.error_code) or "not found" in str(exc).lower():
            raise UsageError(f"model '{settings.registered_model}' has no champion yet") from None
        raise ServiceError(f"MLflow at {settings.mlflow_tracking_uri}: {exc.message}") from None
    metrics = {
        label: float(mv.tags[tag]) * (1e6 if tag == "test_fa" else 1.0)
        for label, tag in METRIC_TAGS.items()
        if tag in mv.tags
    }
    size = mv.tags.get("data_image_size")
    resized = mv.tags.get("data_eval_protocol") == "resized"
    run = client.get_run(mv.run_id)
    url = f"{settings.mlflow_tracking_uri}/#/experiments/{run.info.experiment_id}/runs/{mv.run_id}"
    return ChampionSummary(
        version=str(mv.version),
        run_id=mv.run_id,
        metrics=metrics,
        onnx_uri=mv.tags.get("onnx_uri"),
        mlflow_url=url,
        evaluated=f"resized to {size}x{size}" if resized else "original resolution",
    )


def print_summary(summary: ChampionSummary, console: Console | None = None) -> None:
    console = console or Console()
    table = Table(title=f"gglnet champion: version {summary.version}")
    table.add_column(f"metric (test split, {summary.evaluated})")
    table.add_column("value", justify="right")
    for name, value in summary.metrics.items():
        table.add_row(name, f"{value:.4f}")
    console.print(table)
    console.print(f"ONNX artifact : {summary.onnx_uri or '(not exported)'}")
    console.print(f"MLflow run    : {summary.mlflow_url}")
    console.print("DVC           : dvc metrics show / dvc plots show / dvc params diff")
