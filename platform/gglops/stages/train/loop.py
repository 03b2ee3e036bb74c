"""The per-worker training function that Ray Train runs on every rank."""

from __future__ import annotations

import math
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import ray
import ray.train
import torch
import torch.distributed as dist
from ray.train import Checkpoint
from ray.train.torch import get_device, prepare_data_loader, prepare_model

from gglops.adapters.raypatches import quiet_train_reports
from gglops.adapters.tracking import MetricSink
from gglops.stages.train.checkpointing import (
    Restored,
    checkpoint_problem,
    epoch_checkpoints,
    epoch_dir_name,
    epoch_of,
    is_complete,
    restore_checkpoint,
    save_checkpoint,
)
from gglops.stages.train.loop_config import EpochRecord, LoopConfig, WorkerSummary
from gglops.stages.train.progress import StepReporter, best_so_far, echo, epoch_line
from gglops.stages.train.session import LossDivergedError, TrainSession, build_session

CONFIG_KEY = "loop"


def train_loop_per_worker(config: dict[str, Any]) -> dict[str, Any]:
    """Train `params.train.epochs` epochs from the latest checkpoint (if any).

    Every rank reports each epoch; only rank 0 writes checkpoint files and talks to MLflow.
    Returns rank 0's `WorkerSummary` (Ray hands it to the driver as `Result.return_value`).
    """
    cfg: LoopConfig = config[CONFIG_KEY]
    quiet_train_reports()
    _use_assigned_cpus()
    context = ray.train.get_context()
    rank, world = context.get_world_rank(), context.get_world_size()
    session = build_session(
        cfg.params,
        cfg.data_root,
        rank=rank,
        world_size=world,
        device=get_device(),
        prepare_model=prepare_model,
        prepare_loader=lambda loader: prepare_data_loader(loader, add_dist_sampler=False),
    )
    node_ids = _node_ids(ray.get_runtime_context().get_node_id())
    epochs = cfg.params.train.epochs
    reporter = StepReporter(cfg.progress if rank == 0 else None, epochs, world)
    restored = _restore(session, reporter if rank == 0 else None)
    sink = _sink(cfg, restored) if rank == 0 else None
    logged = _logged_steps(cfg) if sink else set()
    history = list(restored.history)
    stopped = None
    for epoch in range(restored.next_epoch, epochs):
        try:
            record = _run_epoch(session, epoch, reporter)
        except LossDivergedError as exc:
            # Returning (not raising) keeps Ray from retrying a run that would diverge again,
            # and nothing of the diverged model is reported or checkpointed.
            stopped = str(exc)
            break
        history.append(record)
        if sink and epoch not in logged:
            sink.log(record.tracked(), step=epoch)
        elif sink and cfg.echo:
            _say(reporter, f"epoch {epoch} retrained; MLflow keeps the values it logged first")
        if rank == 0:
            line = epoch_line(record, epochs, best_so_far(history))
            if cfg.echo:
                echo(line)  # the worker's log file keeps every epoch
            reporter.epoch_done(line)
        _report(session, record, history, sink)
    pending = sink.flush() if sink else 0
    return WorkerSummary(
        history=history,
        start_epoch=restored.next_epoch,
        node_ids=node_ids,
        mlflow_pending=pending,
        stopped=stopped,
        precision=session.precision,
    ).model_dump(mode="json")


def _use_assigned_cpus() -> None:
    """Intra-op threads = the CPUs Ray gave this worker (Ray's OMP_NUM_THREADS may come
    after torch has sized its pool)."""
    cpus = ray.get_runtime_context().get_assigned_resources().get("CPU", 1.0)
    torch.set_num_threads(max(1, math.floor(cpus)))


def _restore(session: TrainSession, reporter: StepReporter | None) -> Restored:
    """Continue from the newest intact checkpoint; a damaged one is skipped (one line each,
    from rank 0, whose `reporter` is given) and never loaded again by this run, so Ray has
    nothing to retry."""
    registered = ray.train.get_checkpoint()
    for checkpoint, problem in _candidates(registered):
        if problem is None:
            with checkpoint.as_directory() as directory:
                if (problem := checkpoint_problem(Path(directory))) is None:
                    if reporter and (registered is None or checkpoint.path != registered.path):
                        known = epoch_of(registered.path) if registered else "none"
                        _say(
                            reporter,
                            f"restoring from {checkpoint.path} (Ray had registered epoch {known})",
                        )
                    restore_rng = reporter is not None
                    return restore_checkpoint(Path(directory), session, restore_rng=restore_rng)
        if reporter:
            _say(reporter, f"skipping checkpoint {checkpoint.path}: {problem}")
    return Restored(next_epoch=0, history=[], pending=[])


def _say(reporter: StepReporter, text: str) -> None:
    """A note from rank 0: in its log file, and on the driver's console through the channel."""
    echo(text)
    reporter.note(text)


def _candidates(registered: Checkpoint | None) -> Iterator[tuple[Checkpoint, str | None]]:
    """Ray's registered checkpoint and the run's epoch directories, newest first, each with
    a reason to skip it already known from the listing (None: still to be verified).

    The controller registers a checkpoint only once every rank's report of that round has
    reached it; a worker that dies right after reporting takes its queued report along, so
    rank 0's already uploaded checkpoint stays unregistered and Ray would restart one epoch
    further back. The storage listing finds it.
    """
    storage = ray.train.get_context().get_storage()
    fs = storage.storage_filesystem
    listed = epoch_checkpoints(fs, storage.experiment_fs_path)
    paths = {path.rstrip("/"): None for path in listed}
    if registered is not None:
        paths[registered.path.rstrip("/")] = None
    for path in sorted(paths, key=epoch_of, reverse=True):
        if registered is not None and path == registered.path.rstrip("/"):
            yield registered, None
        elif is_complete(fs, path):
            yield Checkpoint(path=path, filesystem=fs), None
        else:
            problem = "incomplete (its files do not match its manifest)"
            yield Checkpoint(path=path, filesystem=fs), problem


def _logged_steps(cfg: LoopConfig) -> set[int]:
    """Epochs the MLflow run already has (a run that falls back past a damaged or unregistered
    checkpoint retrains them; their first values stay, no step is logged twice)."""
    if cfg.tracking is None:
        return set()
    from gglops.adapters import tracking

    try:
        return tracking.metric_steps(cfg.tracking.uri, cfg.tracking.run_id, "train_loss")
    except Exception:  # MLflow down: the sink buffers anyway; at worst a step repeats
        return set()


def _sink(cfg: LoopConfig, restored: Restored) -> MetricSink | None:
    if cfg.tracking is None:
        return None
    target = cfg.tracking
    return MetricSink(target.uri, target.run_id, target.pending_file, restored.pending)


def _run_epoch(session: TrainSession, epoch: int, reporter: StepReporter) -> EpochRecord:
    start = time.perf_counter()
    reporter.start_epoch(epoch)
    stats = session.train_epoch(epoch, reporter.step if reporter.active else None)
    reporter.validating()
    scores = session.validate()
    return EpochRecord(
        epoch=epoch,
        train_loss=stats.loss,
        val_miou=scores["miou"],
        val_niou=scores["niou"],
        val_pd=scores["pd"],
        val_fa=scores["fa"],
        # Ranks hold equal shards (the sampler pads), so the global rate is world × local.
        images_per_s=stats.images * session.world_size / max(stats.seconds, 1e-9),
        epoch_s=time.perf_counter() - start,
    )


def _report(
    session: TrainSession,
    record: EpochRecord,
    history: list[EpochRecord],
    sink: MetricSink | None,
) -> None:
    metrics = record.model_dump()
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = None
        if session.rank == 0:  # one writer; the other ranks only report metrics
            pending = sink.pending if sink else []
            save_checkpoint(Path(tmp), session, record.epoch, history, pending)
            checkpoint = Checkpoint.from_directory(tmp)
        ray.train.report(
            metrics, checkpoint=checkpoint, checkpoint_dir_name=epoch_dir_name(record.epoch)
        )


def _node_ids(own: str) -> list[str]:
    """Every rank's Ray node id, gathered so that rank 0 can say where workers ran."""
    if not (dist.is_available() and dist.is_initialized()):
        return [own]
    gathered: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, own)
    return [str(n) for n in gathered]
