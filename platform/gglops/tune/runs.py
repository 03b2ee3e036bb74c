"""The sweep's MLflow runs: one parent per sweep, one nested child per trial.

Children are created by the trials themselves (`trial.py`); the driver creates the parent,
and at the end closes every child with its outcome and gives the parent the best trial's
params and metrics plus the trials table.
"""

from __future__ import annotations

import time

from mlflow.entities import Metric, Param, RunTag
from mlflow.tracking import MlflowClient

from gglops import tracking
from gglops.params import Params, SearchDim
from gglops.settings import Settings
from gglops.tune.models import TrialSummary
from gglops.tune.trial import RUN_TAG

# Trial outcome → MLflow run status ("unfinished" trials stay RUNNING for a resume).
RUN_STATUS = {"completed": "FINISHED", "stopped": "KILLED", "error": "FAILED"}


def parent_run(
    settings: Settings,
    sweep: str,
    params: Params,
    space: dict[str, SearchDim],
    lineage: dict[str, str],
) -> str:
    """The sweep's parent run, found again by its name when the sweep resumes."""
    uri, experiment = settings.mlflow_tracking_uri, settings.experiment_name
    found = tracking.find_run(uri, experiment, RUN_TAG, sweep)
    if found:
        tracking.reopen_run(uri, found)
        return found
    # Searched keys are left out here: the parent gets the best trial's values at the end.
    fixed = {k: v for k, v in params.flat().items() if k not in space}
    tags = {**lineage, "sweep": sweep, RUN_TAG: sweep, "params_hash": params.digest()}
    return tracking.start_run(uri, experiment, sweep, fixed, tags)


def child_runs(settings: Settings, parent_id: str) -> dict[str, str]:
    """`ray_run_name` → run id of every child of `parent_id`."""
    client = MlflowClient(tracking_uri=settings.mlflow_tracking_uri)
    experiment_id = client.get_run(parent_id).info.experiment_id
    runs = client.search_runs(
        [experiment_id], filter_string=f"tags.mlflow.parentRunId = '{parent_id}'"
    )
    return {r.data.tags.get(RUN_TAG, ""): r.info.run_id for r in runs}


def close_children(settings: Settings, trials: list[TrialSummary]) -> None:
    client = MlflowClient(tracking_uri=settings.mlflow_tracking_uri)
    for trial in trials:
        if trial.run_id is None or trial.status not in RUN_STATUS:
            continue
        tags = [RunTag("trial_status", trial.status), RunTag("epochs_run", str(trial.epochs))]
        client.log_batch(trial.run_id, tags=tags)
        # A run that already ended (a finished trial, before a resume) keeps its end time.
        if client.get_run(trial.run_id).info.status == "RUNNING":
            client.set_terminated(trial.run_id, RUN_STATUS[trial.status])


def finish_parent(
    settings: Settings, parent_id: str, best: TrialSummary, table_csv: str, wall_s: float
) -> None:
    """Best params as the parent's params, best metrics as `best_<name>`, the table."""
    client = MlflowClient(tracking_uri=settings.mlflow_tracking_uri)
    now = int(time.time() * 1000)
    client.log_batch(
        parent_id,
        params=[Param(k, str(v)) for k, v in sorted(best.params.items())],
        metrics=[Metric(f"best_{k}", v, now, 0) for k, v in sorted(best.best.items())]
        + [Metric("sweep_wall_s", wall_s, now, 0)],
        tags=[RunTag("best_trial_id", best.trial_id), RunTag("best_run_id", best.run_id or "")],
    )
    client.log_text(parent_id, table_csv, "tune/tune_trials.csv")
    client.set_terminated(parent_id, "FINISHED")
