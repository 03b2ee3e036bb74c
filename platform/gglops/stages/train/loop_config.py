"""What the driver hands to every training worker, and what rank 0 hands back."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from gglops.core.params import Params


class TrackingTarget(BaseModel):
    """Where rank 0 sends per-epoch metrics; `pending_file` buffers them during outages."""

    model_config = ConfigDict(frozen=True)

    uri: str
    run_id: str
    pending_file: Path


class LoopConfig(BaseModel):
    model_config = ConfigDict(frozen=True)

    params: Params
    data_root: Path
    tracking: TrackingTarget | None = None
    echo: bool = True  # rank 0 prints one line per epoch to its stdout (the worker's log)
    progress: Any = None  # a ray.util.queue.Queue the driver drains (`progress_channel`)


class EpochRecord(BaseModel):
    """One epoch's figures: reported to Ray, logged to MLflow, printed in the table."""

    model_config = ConfigDict(frozen=True)

    epoch: int
    train_loss: float
    val_miou: float
    val_niou: float
    val_pd: float
    val_fa: float
    images_per_s: float
    epoch_s: float

    def tracked(self) -> dict[str, float]:
        """The per-epoch MLflow metrics, under the names the UI, Tune and the gates read."""
        return self.model_dump(include={"train_loss", "val_miou", "val_niou", "val_pd", "val_fa"})

    def scores(self) -> dict[str, float]:
        return {"miou": self.val_miou, "niou": self.val_niou, "pd": self.val_pd, "fa": self.val_fa}


class WorkerSummary(BaseModel):
    """Rank 0's return value: the whole history (restored epochs included) and placement."""

    history: list[EpochRecord]
    start_epoch: int
    node_ids: list[str]
    mlflow_pending: int = 0
    stopped: str | None = None  # why training stopped early (a diverged loss), else None
    precision: str = "fp32"  # the concrete precision `train.precision` meant on rank 0
