"""What `gglops tune` takes and hands back (the `--out` JSON is `TuneResult`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from gglops.core.params import Params

TrialStatus = Literal["completed", "stopped", "error", "unfinished"]


class TuneRequest(BaseModel):
    """What `gglops tune` asks for; `params` are final (`gglops.core.params.resolve`: --data and
    --samples are in them already)."""

    model_config = ConfigDict(frozen=True, extra="forbid")  # a stale field fails, not ignored

    params: Params
    resume: bool = False
    best_out: Path = Path("params/best.yaml")
    sweep: str | None = None  # a new `tune-<run_name>-<timestamp>` when None
    plots: Path | None = None  # directory for tune_trials.csv / tune_trials.png


class TrialSummary(BaseModel):
    """One trial as the table, the plots and the parent MLflow run show it."""

    index: int  # 1-based, in creation order
    trial_id: str
    params: dict[str, Any]  # the searched keys only (dotted)
    epochs: int  # epochs this trial ran (ASHA stops bad ones early)
    best: dict[str, float]  # metrics of its best epoch (by tune.metric); empty if none
    history: list[float]  # tune.metric per epoch, for the plots
    status: TrialStatus
    duration_s: float
    run_id: str | None = None  # the child MLflow run


class TuneResult(BaseModel):
    best_params: dict[str, Any]
    best_metrics: dict[str, float]
    parent_run_id: str
    sweep: str
    metric: str
    wall_s: float  # this invocation's Tuner.fit(), start-up included
    trials: list[TrialSummary]
    best_trial_id: str = ""
