"""`run_training`: checks, MLflow run, Ray Train fit, model logging, summary (the driver)."""

from __future__ import annotations

import logging
import statistics
import tempfile
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict

from gglops.adapters import tracking
from gglops.adapters.raycluster import check_capacity, connect_ray
from gglops.adapters.raypatches import ray_logs_dir
from gglops.adapters.raystorage import (
    Storage,
    check_space,
    check_writable,
    existing_runs,
    new_run_name,
    resolve_storage,
    run_lock,
    storage_failure,
)
from gglops.core.errors import DataError, RunError, UsageError, first_line
from gglops.core.params import Params
from gglops.core.settings import Settings
from gglops.stages.train.checkpointing import checkpoint_bytes
from gglops.stages.train.loop_config import EpochRecord, WorkerSummary
from gglops.stages.train.progress import ProgressHandler, progress_channel
from gglops.stages.train.trainer import build_trainer, pending_file

PARAMS_ARTIFACT = "params"  # run artifact folder of the params.yaml the run trained with
log = logging.getLogger(__name__)


class TrainRequest(BaseModel):
    """What `gglops train` asks for. `params` are final (`gglops.core.params.resolve`: --data,
    --workers, --gpu and --best-params are in them already); nothing downstream changes them."""

    model_config = ConfigDict(frozen=True, extra="forbid")  # a stale field fails, not ignored

    params: Params
    resume: bool = False
    storage_path: str | None = None  # else GGLOPS_STORAGE_PATH
    echo: bool = True  # rank 0 writes one line per epoch to its log


class TrainResult(BaseModel):
    run_id: str
    run_name: str
    checkpoint: str  # path or s3:// URI of the best checkpoint (a model bundle)
    metrics: dict[str, float]  # best epoch's validation metrics (test split): miou niou pd fa
    epochs: int
    best_epoch: int
    start_epoch: int  # first epoch this invocation trained (> 0 after --resume)
    images_per_s: float  # median training throughput over the epochs, all workers together
    history: list[EpochRecord]
    node_ids: list[str]  # Ray node of each rank
    mlflow_pending: int  # metric values MLflow has not accepted (kept in a local JSONL)
    model_log_s: float | None  # time to log the MLflow model; None when it could not be logged
    model_selection: str = ""  # which split chose the best epoch (data.selection)
    precision: str = "fp32"  # the concrete precision trained and validated in
    run_url: str = ""  # the run's page in the MLflow UI; empty for a server-less store


def run_training(
    request: TrainRequest, settings: Settings, on_progress: ProgressHandler | None = None
) -> TrainResult:
    """Validate everything cheap first, then train on Ray and track the run in MLflow;
    `on_progress` receives rank 0's progress events as they happen."""
    params = request.params
    data_root, selection = _check_data(params)
    storage = resolve_storage(settings, request.storage_path)
    check_writable(storage)
    one = checkpoint_bytes(params.model.width_mult, averaged=params.train.ema > 0)
    check_space(storage, one * (params.train.keep_checkpoints + 1))
    tracking.probe_tracking_server(settings.mlflow_tracking_uri)
    run_name = _run_name(storage, params.train.run_name, request.resume)
    if request.resume:
        _mark_abandoned(settings, storage, run_name)
    # Held until the driver ends (the kernel or the lease's expiry drops it if it dies): a
    # second `gglops train` of this run is refused before it starts Ray or writes anything.
    with run_lock(storage, run_name, settings):
        cpus = params.train.cpus_per_worker
        connect_ray(settings, params.train.workers * cpus)
        check_capacity(params.train.workers, params.train.use_gpu, cpus)
        return _train(request, settings, data_root, selection, storage, run_name, on_progress)


def _mark_abandoned(settings: Settings, storage: Storage, run_name: str) -> None:
    """The run about to be resumed may be RUNNING in MLflow with no driver (kill -9): say so."""
    from gglops.stages.train.abandoned import mark_abandoned

    try:
        marked = mark_abandoned(settings, storage, {run_name})
    except Exception:  # best effort: MLflow's state must never stop a resume
        return
    for gone in marked:
        log.warning(
            "run %s (%s) was RUNNING with no live driver: marked KILLED (abandoned), now resumed",
            gone.run_name,
            gone.run_id,
        )


def _train(
    request: TrainRequest,
    settings: Settings,
    data_root: Path,
    selection: str,
    storage: Storage,
    run_name: str,
    on_progress: ProgressHandler | None,
) -> TrainResult:
    params = request.params
    run_id = _open_run(settings, params, data_root, selection, run_name, storage)
    uri = settings.mlflow_tracking_uri
    try:
        with progress_channel(on_progress) as channel:
            trainer = build_trainer(
                params,
                data_root,
                settings,
                run_name,
                mlflow_run_id=run_id,
                storage=storage,
                echo=request.echo,
                progress=channel,
                cpus_per_worker=params.train.cpus_per_worker,
            )
            with tracking.system_metrics(uri, run_id, resume=request.resume):
                result = trainer.fit()
    except BaseException as exc:
        _quietly(tracking.end_run, uri, run_id, "FAILED")
        failure = storage_failure(exc, storage) or worker_failure(exc)
        if failure is not None:
            raise failure from exc
        raise
    summary = WorkerSummary.model_validate(result.return_value)  # type: ignore[attr-defined]  # V2
    if summary.stopped is not None:
        _quietly(tracking.end_run, uri, run_id, "FAILED")
        raise UsageError(_stopped_line(summary.stopped, result.checkpoint, storage))
    return _finish(result, summary, settings, selection, run_id, run_name, storage)


def worker_failure(exc: BaseException) -> RunError | None:
    """One line for a run whose worker raised (Ray's WorkerGroupError): the first failed
    rank's error, and where Ray keeps its traceback. None for any other failure."""
    failures: dict[int, BaseException] = getattr(exc, "worker_failures", None) or {}
    if not failures:
        return None
    rank = min(failures)
    cause = failures[rank]
    inner = getattr(cause, "cause", None)  # a RayTaskError wraps the worker's own exception
    shown = inner if isinstance(inner, BaseException) else cause
    logs = ray_logs_dir()
    where = f"{logs}/worker-*.err" if logs else "the Ray workers' logs"
    return RunError(
        f"train: worker rank {rank} failed: {type(shown).__name__}: {first_line(shown)} "
        f"(full traceback in {where})"
    )


def _stopped_line(reason: str, checkpoint: Any, storage: Storage) -> str:
    """One line for a run that stopped early; the newest reported checkpoint is the good one."""
    kept = storage.child_uri(checkpoint.path) if checkpoint else "none (no epoch finished)"
    return f"train: {reason}; last good checkpoint: {kept} (lower train.lr or set train.grad_clip)"


def _check_data(params: Params) -> tuple[Path, str]:
    """The data root, and one line naming the split that chooses the model (for every record
    of the run), from one reading of the dataset's splits."""
    from gglops.stages.train.session import selection_of

    root = Path(params.data.root)
    if not root.is_dir():
        raise DataError(f"data root {root} does not exist (--data or data.root)")
    splits = selection_of(root, params)
    if not splits.fit or not splits.test:
        raise DataError(f"{root}: the split has no train or no test images")
    return root, f"{params.data.selection}: {splits.description}"


def _run_name(storage: Storage, base: str, resume: bool) -> str:
    """--resume: the newest `<base>-*` run; otherwise a fresh name (never reuse silently)."""
    if resume:
        earlier = existing_runs(storage, base)
        if earlier:
            return earlier[-1]
        log.warning("no earlier run %s-* under %s: starting fresh", base, storage.uri)
    return new_run_name(base)


def _open_run(
    settings: Settings,
    params: Params,
    data_root: Path,
    selection: str,
    run_name: str,
    storage: Storage,
) -> str:
    """The MLflow run of this Ray run: reopened on resume, else created with params, tags,
    lineage, the data splits as inputs and the params as a params.yaml artifact."""
    uri, experiment = settings.mlflow_tracking_uri, settings.experiment_name
    if tracking.find_run(uri, experiment, run_name) is None:
        origin = tracking.lineage(params, data_root, source="gglops train")
    else:
        origin = None  # resumed: the run has its lineage already
    tags = {"ray_storage": storage.uri, "model_selection": selection}
    run_id = tracking.open_run(uri, experiment, run_name, params.flat(), tags, origin)
    if origin is not None:
        text = yaml.safe_dump(params.model_dump(mode="json"), sort_keys=False)
        tracking.log_text(uri, run_id, text, f"{PARAMS_ARTIFACT}/params.yaml")
    return run_id


def _finish(
    result: Any,
    summary: WorkerSummary,
    settings: Settings,
    selection: str,
    run_id: str,
    run_name: str,
    storage: Storage,
) -> TrainResult:
    checkpoint, best_epoch = _best_checkpoint(result)
    best = next(r for r in summary.history if r.epoch == best_epoch)
    uri = settings.mlflow_tracking_uri
    log_s = _log_model(checkpoint, uri, run_id, best_epoch)
    pending = _deliver_leftovers(uri, run_id, summary.mlflow_pending)
    checkpoint_uri = storage.child_uri(checkpoint.path)
    run_tags = {"checkpoint": checkpoint_uri, "precision": summary.precision}
    _quietly(tracking.set_tags, uri, run_id, run_tags)
    if not _quietly(tracking.end_run, uri, run_id, "FINISHED"):
        log.warning("MLflow run %s could not be marked finished", run_id)
    return TrainResult(
        run_id=run_id,
        run_name=run_name,
        checkpoint=checkpoint_uri,
        metrics=best.scores(),
        epochs=len(summary.history),
        best_epoch=best_epoch,
        start_epoch=summary.start_epoch,
        images_per_s=statistics.median(r.images_per_s for r in summary.history),
        history=summary.history,
        node_ids=summary.node_ids,
        mlflow_pending=pending,
        model_log_s=log_s,
        model_selection=selection,
        precision=summary.precision,
        run_url=_run_page(uri, run_id),
    )


def _run_page(uri: str, run_id: str) -> str:
    """The MLflow UI page of the run when the store is a server (best effort)."""
    if not uri.startswith(("http://", "https://")):
        return ""
    try:
        info = tracking.rest_get(uri, "runs/get", run_id=run_id)["run"]["info"]
    except Exception:  # the page is a convenience: never fail a finished run over it
        return ""
    return tracking.run_url(uri, info["experiment_id"], run_id)


def _best_checkpoint(result: Any) -> tuple[Any, int]:
    """Highest val_miou among the kept checkpoints (the newest on a tie)."""
    kept = result.best_checkpoints or []
    if not kept:
        return result.checkpoint, int(result.metrics["epoch"])
    checkpoint, metrics = max(kept, key=lambda cm: (cm[1]["val_miou"], cm[1]["epoch"]))
    return checkpoint, int(metrics["epoch"])


def _log_model(checkpoint: Any, uri: str, run_id: str, best_epoch: int) -> float | None:
    """The best checkpoint as the run's model; its metrics are those of the best epoch."""
    with tempfile.TemporaryDirectory() as tmp:
        local = Path(checkpoint.to_directory(tmp))
        try:
            seconds = tracking.log_model(uri, run_id, local, step=best_epoch).seconds
        except Exception as exc:  # training succeeded; a tracking failure must not undo it
            log.warning("MLflow model not logged (%s: %s)", type(exc).__name__, exc)
            return None
    log.info("MLflow model runs:/%s/model logged in %.1f s", run_id, seconds)
    return seconds


def _deliver_leftovers(uri: str, run_id: str, reported: int) -> int:
    """Last delivery attempt from the driver for what rank 0 could not deliver."""
    if not reported:
        return 0
    path = pending_file(run_id)
    left = reported
    if path.exists():
        sink = tracking.MetricSink(uri, run_id, path, tracking.read_pending(path))
        left = sink.flush()
    if left:
        log.warning(
            "%d metric values could not be delivered to MLflow; they are kept in %s", left, path
        )
    return left


def _quietly(fn: Any, *args: Any) -> bool:
    """Run a best-effort tracking call; True when it worked."""
    try:
        fn(*args)
    except Exception:
        return False
    return True
