"""`build_trainer`: the TorchTrainer for one run (reused by `gglops tune` for every trial)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig, UserCallback
from ray.train.torch import TorchConfig, TorchTrainer

from gglops.params import Params
from gglops.settings import Settings
from gglops.train.config import FaultSpec, LoopConfig, TrackingTarget
from gglops.train.loop import CONFIG_KEY, train_loop_per_worker
from gglops.train.storage import Storage, resolve_storage

PENDING_DIR = Path("outputs/mlflow-pending")
CPUS_PER_WORKER = 1.0
# DDP backend per device kind: NCCL between GPUs, gloo between CPU processes.
BACKENDS = {True: "nccl", False: "gloo"}


def pending_file(run_id: str) -> Path:
    """Local JSONL buffer of the metrics that MLflow has not accepted yet."""
    return (PENDING_DIR / f"{run_id}.jsonl").absolute()


def build_trainer(
    params: Params,
    data_root: Path,
    settings: Settings,
    run_name: str,
    *,
    mlflow_run_id: str | None,
    callbacks: Sequence[UserCallback] = (),
    storage: Storage | None = None,
    fault: FaultSpec | None = None,
    echo: bool = True,
    cpus_per_worker: float = CPUS_PER_WORKER,
    run_config_kwargs: Mapping[str, Any] | None = None,
) -> TorchTrainer:
    """A TorchTrainer whose storage is `<storage>/<run_name>`.

    Fitting it again with the same `run_name` continues from that run's newest checkpoint
    (this is how `--resume` works). `mlflow_run_id=None` disables per-epoch MLflow logging.
    """
    train = params.train
    storage = storage or resolve_storage(settings)
    tracking = None
    if mlflow_run_id:
        tracking = TrackingTarget(
            uri=settings.mlflow_tracking_uri,
            run_id=mlflow_run_id,
            pending_file=pending_file(mlflow_run_id),
        )
    loop = LoopConfig(
        params=params, data_root=data_root.absolute(), tracking=tracking, fault=fault, echo=echo
    )
    run_config = RunConfig(
        name=run_name,
        storage_path=storage.path,
        storage_filesystem=storage.filesystem,
        failure_config=FailureConfig(max_failures=train.max_failures),
        checkpoint_config=CheckpointConfig(
            num_to_keep=train.keep_checkpoints,
            checkpoint_score_attribute="val_miou",
            checkpoint_score_order="max",
        ),
        callbacks=list(callbacks),
        worker_runtime_env=_worker_env(settings),
        **dict(run_config_kwargs or {}),
    )
    return TorchTrainer(
        train_loop_per_worker,
        train_loop_config={CONFIG_KEY: loop},
        torch_config=TorchConfig(backend=BACKENDS[train.use_gpu]),
        scaling_config=ScalingConfig(
            num_workers=train.workers,
            use_gpu=train.use_gpu,
            resources_per_worker={"CPU": cpus_per_worker},
        ),
        run_config=run_config,
    )


def _worker_env(settings: Settings) -> dict[str, Any] | None:
    """The tracking token, when one is configured, reaches rank 0's MLflow client this way."""
    if settings.mlflow_tracking_token is None:
        return None
    return {
        "env_vars": {"MLFLOW_TRACKING_TOKEN": settings.mlflow_tracking_token.get_secret_value()}
    }
