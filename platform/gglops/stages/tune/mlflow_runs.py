"""The sweep's MLflow runs: one parent per sweep, one nested child per trial.

Children are created by the trials themselves (`trial.py`); the driver creates the parent,
and at the end closes every child with its outcome and gives the parent the best trial's
params and metrics plus the trials table.
"""

from __future__ import annotations

from gglops.adapters import tracking
from gglops.core.params import Params, SearchDim
from gglops.core.settings import Settings
from gglops.stages.tune.result import TrialSummary

# Trial outcome → MLflow run status ("unfinished" trials stay RUNNING for a resume).
RUN_STATUS = {"completed": "FINISHED", "stopped": "KILLED", "error": "FAILED"}


def parent_run(
    settings: Settings,
    sweep: str,
    params: Params,
    space: dict[str, SearchDim],
    lineage: tracking.Lineage,
) -> str:
    """The sweep's parent run, found again by its name when the sweep resumes."""
    # Searched keys are left out here: the parent gets the best trial's values at the end.
    fixed = {k: v for k, v in params.flat().items() if k not in space}
    return tracking.open_run(
        settings.mlflow_tracking_uri,
        settings.experiment_name,
        sweep,
        fixed,
        {"sweep": sweep},
        lineage,
    )


def child_runs(settings: Settings, parent_id: str) -> dict[str, str]:
    """`ray_run_name` → run id of every child of `parent_id`."""
    return tracking.child_runs(settings.mlflow_tracking_uri, parent_id)


def close_children(settings: Settings, trials: list[TrialSummary]) -> None:
    uri = settings.mlflow_tracking_uri
    for trial in trials:
        if trial.run_id is None or trial.status not in RUN_STATUS:
            continue
        tracking.set_tags(
            uri, trial.run_id, {"trial_status": trial.status, "epochs_run": str(trial.epochs)}
        )
        # A run that already ended (a finished trial, before a resume) keeps its end time.
        tracking.end_if_running(uri, trial.run_id, RUN_STATUS[trial.status])


def finish_parent(
    settings: Settings, parent_id: str, best: TrialSummary, table_csv: str, wall_s: float
) -> None:
    """Best params as the parent's params, best metrics as `best_<name>`, the table."""
    uri = settings.mlflow_tracking_uri
    tracking.log_params(uri, parent_id, {k: str(v) for k, v in best.params.items()})
    metrics = {f"best_{k}": v for k, v in best.best.items()} | {"sweep_wall_s": wall_s}
    tracking.log_metrics(uri, parent_id, metrics)
    tags = {"best_trial_id": best.trial_id, "best_run_id": best.run_id or ""}
    tracking.set_tags(uri, parent_id, tags)
    tracking.log_text(uri, parent_id, table_csv, "tune/tune_trials.csv")
    tracking.end_run(uri, parent_id)
