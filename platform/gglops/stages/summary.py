"""What `make demo` ends with: the champion, its metrics, where everything landed (the CLI's
`gglops summary` renders it).

It reads the registry over MLflow's REST API (`tracking.rest_get`): importing mlflow alone
takes seconds, and this command answers a person waiting at a prompt.
"""

from __future__ import annotations

from pydantic import BaseModel

from gglops.adapters.registry import GATES_HEADING
from gglops.adapters.tracking import rest_get, run_url
from gglops.core.errors import ServiceError, UsageError
from gglops.core.settings import Settings

METRIC_TAGS = {"mIoU": "miou", "nIoU": "niou", "Pd": "pd", "Fa": "fa"}  # label → test_* tag


class ChampionSummary(BaseModel):
    model: str  # the registered model's name (GGLOPS_REGISTERED_MODEL)
    version: str
    alias: str  # champion, or candidate when no version has been promoted
    run_id: str
    metrics: dict[str, float]
    onnx_uri: str | None
    mlflow_url: str
    evaluated: str = "original resolution"  # the eval protocol its test metrics were taken at
    gates: str | None = None  # the version's last gate verdict, from its description
    split: str = "test"  # where `metrics` come from: test (evaluated), else val (its epoch)


def champion_summary(settings: Settings) -> ChampionSummary:
    """The `champion` of the registered model, else its `candidate` with its gate verdict."""
    uri, name = settings.mlflow_tracking_uri, settings.registered_model
    try:
        model = rest_get(uri, "registered-models/get", name=name)["registered_model"]
        aliases = {a["alias"]: a["version"] for a in model.get("aliases", [])}
        alias = next((a for a in ("champion", "candidate") if a in aliases), None)
        if alias is None:
            raise UsageError(f"model '{name}' has no champion or candidate version yet")
        version = rest_get(uri, "model-versions/get", name=name, version=aliases[alias])
        version = version["model_version"]
        run = rest_get(uri, "runs/get", run_id=version["run_id"])
    except LookupError as exc:
        if str(exc) == "RESOURCE_DOES_NOT_EXIST":
            raise UsageError(f"model '{name}' is not registered on {uri}") from None
        raise ServiceError(f"MLflow at {uri}: {exc}") from None
    tags = {t["key"]: t["value"] for t in version.get("tags", [])}
    split = "test" if any(f"test_{m}" in tags for m in METRIC_TAGS.values()) else "val"
    metrics = {
        m: float(tags[f"{split}_{m}"]) for m in METRIC_TAGS.values() if f"{split}_{m}" in tags
    }
    size = tags.get("data_image_size")
    resized = tags.get("data_eval_protocol") == "resized"
    return ChampionSummary(
        model=settings.registered_model,
        version=str(version["version"]),
        alias=alias,
        run_id=version["run_id"],
        metrics=metrics,
        onnx_uri=tags.get("onnx_uri"),
        mlflow_url=run_url(uri, run["run"]["info"]["experiment_id"], version["run_id"]),
        evaluated=f"resized to {size}x{size}" if resized else "original resolution",
        gates=_gates_line(version.get("description") or ""),
        split=split,
    )


def _gates_line(description: str) -> str | None:
    """`refused against no champion on …: FAIL min_miou (…)` from the version's description."""
    lines = [ln for ln in description.splitlines() if ln.startswith(GATES_HEADING)]
    return lines[-1].removeprefix(GATES_HEADING).lstrip(": ") if lines else None
