"""Ray Train V2 training of GGL-Net: `run_training` (driver) and `build_trainer` (reused by
`gglops tune`). Importing this package pulls in ray and torch: the CLI does it lazily."""

from gglops.adapters.raystorage import Storage, resolve_storage
from gglops.stages.train.loop_config import EpochRecord, LoopConfig, WorkerSummary
from gglops.stages.train.runner import TrainRequest, TrainResult, run_training
from gglops.stages.train.trainer import build_trainer

__all__ = [
    "EpochRecord",
    "LoopConfig",
    "Storage",
    "TrainRequest",
    "TrainResult",
    "WorkerSummary",
    "build_trainer",
    "resolve_storage",
    "run_training",
]
