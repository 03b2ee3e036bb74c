"""MLflow runs whose driver died (kill -9, a lost machine): RUNNING for ever otherwise.

A `gglops train` holds its run's lock (`gglops.adapters.raystorage.run_lock`) for as long as it
lives; the kernel (local storage) or the lease's expiry (S3) drops it when the driver dies.
So a RUNNING run whose lock is free has no driver: it is marked KILLED with a tag saying why,
and the next `--resume` of it reopens it as usual.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gglops.adapters.raystorage import Storage, run_lock
from gglops.core.errors import UsageError
from gglops.core.settings import Settings

ABANDONED_TAG = "gglops.abandoned"


@dataclass(frozen=True)
class Abandoned:
    run_id: str
    run_name: str


def lock_is_free(storage: Storage, run_name: str, settings: Settings) -> bool:
    """Nobody trains `run_name` right now (we could take its lock; it is released again)."""
    try:
        with run_lock(storage, run_name, settings):
            return True
    except UsageError:
        return False


def running_runs(client: Any, experiment_name: str) -> list[Any]:
    experiment = client.get_experiment_by_name(experiment_name)
    if experiment is None:
        return []
    return list(client.search_runs([experiment.experiment_id], "attributes.status = 'RUNNING'"))


def mark_abandoned(
    settings: Settings, storage: Storage, run_names: set[str] | None = None
) -> list[Abandoned]:
    """Mark KILLED every RUNNING run of the experiment (or of `run_names`) whose training
    lock is free; returns what was marked. Runs with a live driver are left alone."""
    from gglops.adapters import tracking

    client = tracking.client(settings.mlflow_tracking_uri)
    marked = []
    for run in running_runs(client, settings.experiment_name):
        name = run.info.run_name
        if run_names is not None and name not in run_names:
            continue
        if not lock_is_free(storage, name, settings):
            continue
        client.set_tag(run.info.run_id, ABANDONED_TAG, "driver gone: its training lock was free")
        client.set_terminated(run.info.run_id, status="KILLED")
        marked.append(Abandoned(run.info.run_id, name))
    return marked
