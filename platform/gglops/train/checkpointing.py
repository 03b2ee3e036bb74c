"""Checkpoint directory = model bundle + `train_state.pt` (docs/architecture.md).

`train_state.pt` holds what it takes to continue exactly: optimizer, AMP scaler, LR
scheduler, the epoch just finished, RNG states, the epoch history and any MLflow points
that could not be delivered yet (so an outage plus a crash still loses nothing).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gglops.modelio import load_bundle, save_bundle
from gglops.tracking import MetricPoint
from gglops.train.config import EpochRecord
from gglops.train.session import TrainSession

TRAIN_STATE = "train_state.pt"


@dataclass(frozen=True)
class Restored:
    """Where a restored run continues: the next epoch, its history, undelivered metrics."""

    next_epoch: int
    history: list[EpochRecord]
    pending: list[MetricPoint]


def checkpoint_bytes(width_mult: float) -> int:
    """Rough size of one checkpoint: fp32 weights + Adam's two moments (3 × params × 4 B)."""
    from gglnet import GGLNet

    params = sum(p.numel() for p in GGLNet(width_mult=width_mult).parameters())
    return params * 4 * 3


def save_checkpoint(
    directory: Path,
    session: TrainSession,
    epoch: int,
    history: list[EpochRecord],
    pending: list[MetricPoint],
) -> None:
    save_bundle(session.model, directory, session.width_mult)
    state = {
        "epoch": epoch,
        "optimizer": session.optimizer.state_dict(),
        "scaler": session.scaler.state_dict(),
        "scheduler": session.scheduler.state_dict(),
        "rng": _rng_state(),
        "history": [r.model_dump() for r in history],
        "pending": [p.model_dump() for p in pending],
        "best_val_miou": max((r.val_miou for r in history), default=0.0),
    }
    tmp = directory / f".{TRAIN_STATE}.tmp"
    torch.save(state, tmp)
    tmp.replace(directory / TRAIN_STATE)


def restore_checkpoint(directory: Path, session: TrainSession, *, restore_rng: bool) -> Restored:
    """Load weights and training state into `session`; RNG only where asked (rank 0's)."""
    session.net.load_state_dict(load_bundle(directory).state_dict())
    state = torch.load(directory / TRAIN_STATE, map_location="cpu", weights_only=False)
    session.optimizer.load_state_dict(state["optimizer"])
    session.scaler.load_state_dict(state["scaler"])
    session.scheduler.load_state_dict(state["scheduler"])
    if restore_rng:
        _set_rng_state(state["rng"])
    return Restored(
        next_epoch=state["epoch"] + 1,
        history=[EpochRecord.model_validate(r) for r in state["history"]],
        pending=[MetricPoint.model_validate(p) for p in state["pending"]],
    )


def _rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
