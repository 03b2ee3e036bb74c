"""Ray Train V2 training of GGL-Net: `run_training` (driver) and `build_trainer` (reused by
`gglops tune`). Importing this package pulls in ray and torch: the CLI does it lazily."""

from gglops.train.config import EpochRecord, FaultSpec, LoopConfig, WorkerSummary
from gglops.train.runner import TrainRequest, TrainResult, run_training
from gglops.train.storage import Storage, resolve_storage
from gglops.train.trainer import build_trainer

__all__ = [
    "EpochRecord",
    "FaultSpec",
    "LoopConfig",
    "Storage",
    "TrainRequest",
    "TrainResult",
    "WorkerSummary",
    "build_trainer",
    "resolve_storage",
    "run_training",
]
