"""Checkpoint directory = model bundle + `train_state.pt` + `manifest.json` (docs/architecture.md).

`train_state.pt` holds what it takes to continue exactly: optimizer, AMP scaler, LR
scheduler, the live weights where the bundle holds their average (`train.ema`), the epoch
just finished, RNG states, the epoch history and any MLflow points
that could not be delivered yet (so an outage plus a crash still loses nothing).
`manifest.json` (written last) lists every file with its size and sha256: Ray copies a
checkpoint's files to storage in no set order, so a directory is complete only when all
sizes match (a listing), and intact only when the hashes match too (checked on restore).
"""

from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.fs as pafs
import torch

from gglops.adapters.tracking import MetricPoint
from gglops.core.files import atomic_path, atomic_write, sha256_file
from gglops.model.bundle import load_bundle, save_bundle
from gglops.stages.train.loop_config import EpochRecord
from gglops.stages.train.session import TrainSession

TRAIN_STATE = "train_state.pt"
MANIFEST = "manifest.json"
EPOCH_DIR = re.compile(r"epoch-(\d+)$")  # the checkpoint_dir_name the loop reports with


def epoch_dir_name(epoch: int) -> str:
    return f"epoch-{epoch:04d}"


def epoch_of(path: str) -> int:
    """The epoch a checkpoint directory holds, from its name (-1 for any other name)."""
    match = EPOCH_DIR.search(path.rstrip("/"))
    return int(match[1]) if match else -1


@dataclass(frozen=True)
class Restored:
    """Where a restored run continues: the next epoch, its history, undelivered metrics."""

    next_epoch: int
    history: list[EpochRecord]
    pending: list[MetricPoint]


def checkpoint_bytes(width_mult: float, averaged: bool = False) -> int:
    """Rough size of one checkpoint: fp32 weights + Adam's two moments (3 × params × 4 B),
    and the live weights beside their average where `train.ema` keeps one."""
    from gglnet import GGLNet

    params = sum(p.numel() for p in GGLNet(width_mult=width_mult).parameters())
    return params * 4 * (4 if averaged else 3)


def save_checkpoint(
    directory: Path,
    session: TrainSession,
    epoch: int,
    history: list[EpochRecord],
    pending: list[MetricPoint],
) -> None:
    save_bundle(session.scored, directory, session.width_mult)
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
    if session.average is not None:  # the bundle holds the average; training goes on live
        state["live_weights"] = {k: v.detach().cpu() for k, v in session.net.state_dict().items()}
        state["average"] = session.average.state_dict()
    with atomic_path(directory / TRAIN_STATE) as tmp:
        torch.save(state, tmp)
    files = {
        str(f.relative_to(directory)): {"size": f.stat().st_size, "sha256": sha256_file(f)}
        for f in _files(directory)
    }
    atomic_write(directory / MANIFEST, json.dumps(files))


def _manifest_entries(text: str | bytes) -> dict[str, dict[str, Any]]:
    """{file: {"size", "sha256"}}."""
    raw: dict[str, dict[str, Any]] = json.loads(text)
    return raw


def checkpoint_problem(directory: Path) -> str | None:
    """Why a (local copy of a) checkpoint cannot be restored, or None if it is intact."""
    try:
        entries = _manifest_entries((directory / MANIFEST).read_text())
    except (OSError, ValueError):
        return f"no readable {MANIFEST}"
    for name, entry in sorted(entries.items()):
        path = directory / name
        if not path.is_file():
            return f"{name} is missing"
        if path.stat().st_size != entry.get("size"):
            return f"{name} has {path.stat().st_size} bytes, the manifest says {entry['size']}"
        if sha256_file(path) != entry.get("sha256"):
            return f"{name} does not match its sha256 in {MANIFEST} (corrupted)"
    return None


def epoch_checkpoints(fs: pafs.FileSystem, run_path: str) -> list[str]:
    """The epoch directories under `run_path`, newest first."""
    selector = pafs.FileSelector(run_path, allow_not_found=True)
    dirs = [i.path for i in fs.get_file_info(selector) if i.type == pafs.FileType.Directory]
    return sorted((d for d in dirs if epoch_of(d) >= 0), key=epoch_of, reverse=True)


def newest_complete_checkpoint(fs: pafs.FileSystem, run_path: str) -> str | None:
    """The newest epoch directory under `run_path` whose files all match its manifest."""
    return next((d for d in epoch_checkpoints(fs, run_path) if is_complete(fs, d)), None)


def is_complete(fs: pafs.FileSystem, path: str) -> bool:
    """Every file the manifest lists is there with its size (a listing, no download)."""
    try:
        with fs.open_input_stream(f"{path}/{MANIFEST}") as stream:
            expected = _manifest_entries(stream.read())
        infos = fs.get_file_info(pafs.FileSelector(path, recursive=True))
    except (OSError, ValueError):
        return False  # no manifest yet, or unreadable: not a checkpoint to restore from
    found = {i.path[len(path) + 1 :]: i.size for i in infos if i.type == pafs.FileType.File}
    return all(found.get(name) == entry["size"] for name, entry in expected.items())


def _files(directory: Path) -> list[Path]:
    return [f for f in directory.rglob("*") if f.is_file() and f.name != MANIFEST]


def restore_checkpoint(directory: Path, session: TrainSession, *, restore_rng: bool) -> Restored:
    """Load weights and training state into `session`; RNG only where asked (rank 0's)."""
    shipped = load_bundle(directory).state_dict()
    state = torch.load(directory / TRAIN_STATE, map_location="cpu", weights_only=False)
    session.net.load_state_dict(state.get("live_weights", shipped))
    if session.average is not None:  # a checkpoint of a run without train.ema starts it afresh
        session.average.load_state_dict(state.get("average", {"updates": 0}), shipped)
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
