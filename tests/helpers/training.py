"""Tiny training params and settings for tests that run the real training code."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gglops.core.params import Params
from gglops.core.settings import Settings

TINY: dict[str, Any] = {
    "data.image_size": 32,
    "data.loader_workers": 0,
    "model.width_mult": 0.25,
    "train.batch_size": 4,
    "train.lr": 0.01,
    "train.loss": "bce_soft_iou",
    "train.lr_schedule": "none",
    "train.grad_clip": 1.0,
    "train.deterministic": True,
    "train.augment.p": 0.0,
    "train.keep_checkpoints": 2,
}


def tiny_params(data_root: Path, **overrides: Any) -> Params:
    base = {**TINY, "data.root": str(data_root), "data.layout": "auto", "data.split": None}
    return Params().with_overrides({**base, **overrides})


def settings_for(stack: Any, storage: Path) -> Settings:
    return Settings(mlflow_tracking_uri=stack.mlflow_uri, storage_path=str(storage))
