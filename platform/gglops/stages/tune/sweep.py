"""`run_tuning`: a Ray Tune sweep (ASHA early stopping; Optuna, random or grid search)
whose trials are Ray Train runs, tracked as nested MLflow runs, resumable by name.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pyarrow.fs as pafs
from ray import tune
from ray.tune import ExperimentAnalysis
from ray.tune.schedulers import ASHAScheduler
from ray.tune.search import BasicVariantGenerator, ConcurrencyLimiter, SearchAlgorithm, Searcher
from ray.tune.search.optuna import OptunaSearch

from gglops.adapters import tracking
from gglops.adapters.raycluster import check_capacity, connect_ray
from gglops.adapters.raypatches import keep_credentials_on_the_nodes, quiet_tune_output
from gglops.adapters.raystorage import (
    Storage,
    check_writable,
    existing_runs,
    new_run_name,
    resolve_storage,
)
from gglops.core.errors import CheckError, DataError, GGLOpsError, UsageError
from gglops.core.files import atomic_write
from gglops.core.params import Params, SearchDim
from gglops.core.settings import Settings
from gglops.stages.tune import mlflow_runs, sweep_files
from gglops.stages.tune import space as spaces
from gglops.stages.tune.result import TrialStatus, TrialSummary, TuneRequest, TuneResult
from gglops.stages.tune.trial import EPOCHS_DONE, TrialContext, plain, run_trial
from gglops.stages.tune.trial_lines import TrialHandler, TrialLines

log = logging.getLogger(__name__)

# The trial actor only waits on its Train controller; the Train workers hold the CPUs.
TRIAL_CPUS = 0.1
# Tune's trial status → ours; TERMINATED splits into completed / stopped by epochs run.
TRIAL_STATUS: dict[str, TrialStatus] = {
    "TERMINATED": "completed",
    "ERROR": "error",
    "RUNNING": "unfinished",
    "PENDING": "unfinished",
    "PAUSED": "unfinished",
}


class SweepInterruptedError(GGLOpsError):
    """Ctrl+C (or SIGUSR1) stopped the sweep after Tune saved its state."""

    exit_code = 130


def run_tuning(
    request: TuneRequest, settings: Settings, on_trial: TrialHandler | None = None
) -> TuneResult:
    """Run (or resume) the sweep; `on_trial` receives each trial's updates as they happen
    (default: one logged line each)."""
    params = request.params
    space = spaces.checked_space(params)
    mode = spaces.metric_mode(params)
    data_root = _data_root(params)
    tracking.probe_tracking_server(settings.mlflow_tracking_uri)
    storage = resolve_storage(settings)
    check_writable(storage)
    sweep = _sweep_name(storage, params, request)
    tp = params.tune
    connect_ray(settings, tp.workers_per_trial * tp.cpus_per_worker + TRIAL_CPUS)
    if settings.ray_address:
        keep_credentials_on_the_nodes()
    check_capacity(tp.workers_per_trial, params.train.use_gpu, tp.cpus_per_worker,
                   setting="tune.workers_per_trial")  # fmt: skip
    lineage = tracking.lineage(params, data_root, source="gglops tune")
    parent_id = mlflow_runs.parent_run(settings, sweep, params, space, lineage)
    ctx = TrialContext(
        params=params,
        data_root=data_root,
        settings=settings,
        runs=replace(storage, path=f"{storage.path}/{sweep}/trial-runs"),
        sweep=sweep,
        parent_run_id=parent_id,
        lineage=lineage,
    )
    log.info("sweep %s  parent run %s", sweep, parent_id)
    tuner = _tuner(request, ctx, storage, space, mode, on_trial)
    quiet_tune_output()
    start = time.perf_counter()
    grid = tuner.fit()
    wall_s = time.perf_counter() - start
    trials = _summaries(grid, ctx, mlflow_runs.child_runs(settings, parent_id), mode)
    return _finish(request, settings, ctx, trials, wall_s, mode)


def _finish(
    request: TuneRequest,
    settings: Settings,
    ctx: TrialContext,
    trials: list[TrialSummary],
    wall_s: float,
    mode: str,
) -> TuneResult:
    metric = ctx.params.tune.metric
    best = _best(trials, metric, mode)
    mlflow_runs.close_children(settings, trials)
    if any(t.status == "unfinished" for t in trials):
        raise SweepInterruptedError(
            f"sweep {ctx.sweep} interrupted; continue it: gglops tune --resume --sweep {ctx.sweep}"
        )
    if best is None:
        raise CheckError(f"sweep {ctx.sweep}: no trial reported {metric} (see the trial errors)")
    table_csv = sweep_files.trials_csv(trials, metric)
    mlflow_runs.finish_parent(settings, ctx.parent_run_id, best, table_csv, wall_s)
    atomic_write(request.best_out, sweep_files.best_yaml(best.params))
    if request.plots:
        sweep_files.write_trial_plots(request.plots, trials, metric)
    return TuneResult(
        best_params=best.params,
        best_metrics=best.best,
        parent_run_id=ctx.parent_run_id,
        sweep=ctx.sweep,
        metric=metric,
        wall_s=wall_s,
        trials=trials,
        best_trial_id=best.trial_id,
    )


def _data_root(params: Params) -> Path:
    root = Path(params.data.root).absolute()
    if not root.is_dir():
        raise DataError(f"{root}: dataset root not found (--data or data.root)")
    return root


def _sweep_name(storage: Storage, params: Params, request: TuneRequest) -> str:
    """A fresh name unless resuming; `--resume` alone continues the newest sweep."""
    base = f"tune-{params.train.run_name}"
    if not request.resume:
        if request.sweep and _exists(storage, request.sweep):
            raise UsageError(
                f"sweep {request.sweep} already exists under {storage.uri}; "
                "continue it with --resume or pick another --sweep"
            )
        return request.sweep or new_run_name(base)
    names = [request.sweep] if request.sweep else existing_runs(storage, base)
    for name in reversed(names):
        if tune.Tuner.can_restore(_uri(storage, name), storage_filesystem=storage.filesystem):
            return name
    raise UsageError(f"--resume: no saved sweep {request.sweep or base + '-*'} under {storage.uri}")


def _exists(storage: Storage, name: str) -> bool:
    info = storage.filesystem.get_file_info(f"{storage.path}/{name}")
    return info.type != pafs.FileType.NotFound


def _uri(storage: Storage, name: str) -> str:
    return f"{storage.path}/{name}"


def _tuner(
    request: TuneRequest,
    ctx: TrialContext,
    storage: Storage,
    space: dict[str, SearchDim],
    mode: str,
    on_trial: TrialHandler | None = None,
) -> tune.Tuner:
    trainable = tune.with_resources(tune.with_parameters(run_trial, ctx=ctx), {"cpu": TRIAL_CPUS})
    if request.resume:
        # Finished trials stay finished; unfinished and errored ones run again (each from its
        # Ray Train checkpoint, since its run name is stable).
        return tune.Tuner.restore(
            _uri(storage, ctx.sweep),
            trainable=trainable,
            resume_errored=True,
            storage_filesystem=storage.filesystem,
        )
    tp = ctx.params.tune
    grid = tp.search_alg == "grid"
    return tune.Tuner(
        trainable,
        param_space=spaces.param_space(space, grid),
        tune_config=tune.TuneConfig(
            metric=tp.metric,
            mode=mode,
            scheduler=ASHAScheduler(
                time_attr=EPOCHS_DONE,
                max_t=tp.epochs,
                grace_period=min(tp.grace_period, tp.epochs),
                reduction_factor=tp.reduction_factor,
                # A trial that reaches max_t ends on its own (its loop runs tune.epochs), so
                # its Train run and MLflow run close normally instead of being killed.
                stop_last_trials=False,
            ),
            search_alg=SEARCH_ALGS[tp.search_alg](ctx.params, space, mode),
            num_samples=1 if grid else tp.samples,
        ),
        run_config=tune.RunConfig(
            name=ctx.sweep,
            storage_path=storage.path,
            storage_filesystem=storage.filesystem,
            verbose=0,  # Tune's 30-s tables and TensorBoard hints: TrialLines says it once
            callbacks=[TrialLines(tp.epochs, tp.metric, mode, on_trial)],
        ),
    )


def _optuna(params: Params, space: dict[str, SearchDim], mode: str) -> SearchAlgorithm | Searcher:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # its INFO "A new study created"
    baseline = spaces.baseline_point(params, space)
    searcher = OptunaSearch(
        metric=params.tune.metric,
        mode=mode,
        points_to_evaluate=[baseline] if baseline else None,
        seed=params.train.seed,
    )
    return ConcurrencyLimiter(searcher, max_concurrent=params.tune.max_concurrent)


def _random(params: Params, space: dict[str, SearchDim], mode: str) -> SearchAlgorithm:
    baseline = spaces.baseline_point(params, space)
    return BasicVariantGenerator(
        points_to_evaluate=[baseline] if baseline else None,
        max_concurrent=params.tune.max_concurrent,
        random_state=params.train.seed,
    )


def _grid(params: Params, space: dict[str, SearchDim], mode: str) -> SearchAlgorithm:
    return BasicVariantGenerator(max_concurrent=params.tune.max_concurrent)


SEARCH_ALGS = {"optuna": _optuna, "random": _random, "grid": _grid}


def _summaries(
    grid: tune.ResultGrid, ctx: TrialContext, children: dict[str, str], mode: str
) -> list[TrialSummary]:
    """Every trial of the sweep (restored ones included), in creation order."""
    analysis = ExperimentAnalysis(grid.experiment_path, storage_filesystem=grid.filesystem)
    frames = analysis.trial_dataframes  # keyed by trial id
    out = []
    for index, trial in enumerate(sorted(analysis.trials, key=_creation_order), start=1):
        frame = frames.get(trial.trial_id)
        rows = [] if frame is None else frame.to_dict("records")
        run_id = children.get(f"{ctx.sweep}-{trial.trial_id}")
        out.append(_summary(index, trial, rows, ctx.params, run_id, mode))
    return out


def _creation_order(trial: Any) -> tuple[int, str]:
    """Tune tags each trial `<counter>_<params>`; the counter survives a resume."""
    head = str(trial.experiment_tag).split("_", 1)[0]
    return (int(head) if head.isdigit() else 1 << 30, trial.trial_id)


def _summary(
    index: int,
    trial: Any,
    rows: list[dict[str, Any]],
    params: Params,
    run_id: str | None,
    mode: str,
) -> TrialSummary:
    metric = params.tune.metric
    rows = sorted(
        (r for r in rows if _number(r.get(metric)) and _number(r.get(EPOCHS_DONE))),
        key=lambda r: r[EPOCHS_DONE],
    )
    epochs = int(rows[-1][EPOCHS_DONE]) if rows else 0
    status = TRIAL_STATUS.get(trial.status, "unfinished")
    if status == "completed" and epochs < params.tune.epochs:
        status = "stopped"  # ASHA ended it early
    return TrialSummary(
        index=index,
        trial_id=trial.trial_id,
        params=plain(dict(sorted(trial.config.items()))),
        epochs=epochs,
        best=_best_epoch(rows, metric, mode),
        history=[float(r[metric]) for r in rows],
        status=status,
        duration_s=float(max((r.get("time_total_s", 0.0) for r in rows), default=0.0)),
        run_id=run_id,
    )


def _best_epoch(rows: list[dict[str, Any]], metric: str, mode: str) -> dict[str, float]:
    """The reported metrics of the trial's best epoch (empty when it reported none)."""
    if not rows:
        return {}
    row = (max if mode == "max" else min)(rows, key=lambda r: r[metric])
    return {k: float(row[k]) for k in (*spaces.METRIC_MODES, EPOCHS_DONE) if k in row}


def _best(trials: list[TrialSummary], metric: str, mode: str) -> TrialSummary | None:
    scored = [t for t in trials if metric in t.best]
    if not scored:
        return None
    return (max if mode == "max" else min)(scored, key=lambda t: t.best[metric])


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not math.isnan(value)  # NaN is not a score
