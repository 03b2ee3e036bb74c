"""`build_trainer`: the TorchTrainer for one run (reused by `gglops tune` for every trial)."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import SecretStr
from ray.train import (
    CheckpointConfig,
    FailureConfig,
    LoggingConfig,
    RunConfig,
    ScalingConfig,
    UserCallback,
)
from ray.train.torch import TorchConfig, TorchTrainer

from gglops.adapters.raystorage import Storage, resolve_storage
from gglops.core.params import Params
from gglops.core.settings import Settings
from gglops.stages.train.loop import CONFIG_KEY, train_loop_per_worker
from gglops.stages.train.loop_config import LoopConfig, TrackingTarget

PENDING_DIR = Path("outputs/mlflow-pending")
TOKEN_KEY = "mlflow_tracking_token"
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
    echo: bool = True,
    progress: Any = None,
    cpus_per_worker: float = CPUS_PER_WORKER,
    run_config_kwargs: Mapping[str, Any] | None = None,
) -> TorchTrainer:
    """A TorchTrainer whose storage is `<storage>/<run_name>`.

    Fitting it again with the same `run_name` continues from that run's newest checkpoint
    (this is how `--resume` works). `mlflow_run_id=None` disables per-epoch MLflow logging;
    `progress`: the queue of `progress.progress_channel`, or None.
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
        params=params,
        data_root=data_root.absolute(),
        tracking=tracking,
        echo=echo,
        progress=progress,
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
        callbacks=list(callbacks),  # type: ignore[arg-type]  # UserCallback is Ray's Callback
        # Ray Train's own switch: its per-report INFO lines ("Checkpoint successfully
        # created", "Reporting training result") stay in its log files, off the console.
        logging_config=LoggingConfig(log_level="WARNING"),  # type: ignore[call-arg]  # V2 field; the stubs are V1's
        **dict(run_config_kwargs or {}),
    )
    return TorchTrainer(
        _loop_with_token,  # type: ignore[arg-type]  # V2 keeps the return value (Result.return_value)
        train_loop_config={CONFIG_KEY: loop, TOKEN_KEY: settings.mlflow_tracking_token},
        torch_config=TorchConfig(backend=BACKENDS[train.use_gpu]),
        scaling_config=ScalingConfig(
            num_workers=train.workers,
            use_gpu=train.use_gpu,
            resources_per_worker={"CPU": cpus_per_worker},
        ),
        run_config=run_config,
    )


def _loop_with_token(config: dict[str, Any]) -> dict[str, Any]:
    """The tracking token reaches rank 0's MLflow client as a SecretStr in the loop config:
    Ray's runtime-env agent logs a runtime env's env_vars in clear (runtime_env_agent.log)."""
    token: SecretStr | None = config.get(TOKEN_KEY)
    if token is not None:
        os.environ["MLFLOW_TRACKING_TOKEN"] = token.get_secret_value()
    return train_loop_per_worker(config)
