"""One Tune trial: a Ray Train run of GGL-Net (built by `gglops.stages.train.build_trainer`).

This code runs inside the trial's Ray actor, not in the driver: everything it needs comes
in `TrialContext` (plain, picklable values), and paths are absolute because Tune runs
trials in their own working directories.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ray import tune
from ray.tune.integration.ray_train import TuneReportCallback

from gglops.adapters import tracking
from gglops.adapters.raystorage import Storage
from gglops.core.params import Params
from gglops.core.settings import Settings

EPOCHS_DONE = "epochs_done"  # ASHA's time attribute: completed epochs, restarts included
# Short names of searched keys in a trial's MLflow run name (`trial-003 lr=0.0021 bs=8`).
SHORT_KEYS = {"batch_size": "bs", "weight_decay": "wd", "width_mult": "width"}


@dataclass(frozen=True)
class TrialContext:
    params: Params
    data_root: Path
    settings: Settings
    runs: Storage  # where the trials' Ray Train runs live: <storage>/<sweep>/trial-runs
    sweep: str
    parent_run_id: str
    lineage: tracking.Lineage  # data hash, commit, splits: computed once by the driver


class EpochReportCallback(TuneReportCallback):
    """Forwards each epoch to Tune with `epochs_done` = epoch + 1.

    Tune's own `training_iteration` restarts at 1 when an interrupted trial resumes from
    its Ray Train checkpoint; the loop's epoch does not, so ASHA compares like with like.
    """

    def after_report(self, run_context: Any, metrics: list[dict[str, Any]], checkpoint: Any):
        first = {**metrics[0], EPOCHS_DONE: int(metrics[0]["epoch"]) + 1}
        super().after_report(run_context, [first, *metrics[1:]], checkpoint)


def trial_params(base: Params, config: dict[str, Any]) -> Params:
    """The trial's full params: the sampled values on top of params.yaml."""
    fixed = {"train.epochs": base.tune.epochs, "train.workers": base.tune.workers_per_trial}
    return base.with_overrides({**plain(config), **fixed})


def plain(config: dict[str, Any]) -> dict[str, Any]:
    """numpy scalars (from Tune samplers) → Python values, for YAML, JSON and pydantic."""
    return {k: v.item() if hasattr(v, "item") else v for k, v in config.items()}


def run_trial(config: dict[str, Any], ctx: TrialContext) -> None:
    """Tune's function trainable: one Ray Train fit, epochs forwarded to Tune."""
    from gglops.stages.train import build_trainer

    trial_id = tune.get_context().get_trial_id()
    run_name = f"{ctx.sweep}-{trial_id}"
    params = trial_params(ctx.params, config)
    run_id = _child_run(ctx, run_name, params, trial_label(trial_id, config))
    trainer = build_trainer(
        params,
        ctx.data_root,
        ctx.settings,
        run_name,
        mlflow_run_id=run_id,
        callbacks=[EpochReportCallback()],
        storage=ctx.runs,
        echo=False,
        cpus_per_worker=ctx.params.tune.cpus_per_worker,
    )
    trainer.fit()
    tracking.end_run(ctx.settings.mlflow_tracking_uri, run_id)


def trial_label(trial_id: str, config: dict[str, Any]) -> str:
    """`trial-003 lr=0.0021 bs=8`: the trial's number and its sampled values, for the UI."""
    number = trial_id.rsplit("_", 1)[-1]
    number = f"{int(number):03d}" if number.isdigit() else number
    values = [f"{_short(k)}={_value(v)}" for k, v in sorted(plain(config).items())]
    return " ".join([f"trial-{number}", *values])


def _short(key: str) -> str:
    leaf = key.rsplit(".", 1)[-1]
    return SHORT_KEYS.get(leaf, leaf)


def _value(value: Any) -> str:
    return f"{value:.2g}" if isinstance(value, float) else str(value)


def _child_run(ctx: TrialContext, run_name: str, params: Params, label: str) -> str:
    """This trial's MLflow run under the sweep's parent; the same one when it resumes."""
    settings = ctx.settings
    origin = ctx.lineage.model_copy(update={"params_hash": params.digest()})
    tags = {"mlflow.parentRunId": ctx.parent_run_id, "sweep": ctx.sweep}
    return tracking.open_run(
        settings.mlflow_tracking_uri,
        settings.experiment_name,
        run_name,
        params.flat(),
        tags,
        origin,
        display_name=label,
    )
