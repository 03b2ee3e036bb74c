"""Files `gglops train` leaves for the pipeline: the model bundle and the epoch history."""

from __future__ import annotations

import csv
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

from ray.train import Checkpoint

from gglops.adapters.raystorage import resolve_storage
from gglops.core.files import atomic_path
from gglops.core.settings import Settings
from gglops.model.bundle import META_FILE, WEIGHTS_FILE
from gglops.stages.train.loop_config import EpochRecord


def copy_bundle(checkpoint_uri: str, target: Path, settings: Settings) -> Path:
    """Replace `target` with the checkpoint's bundle files (no optimizer state), atomically."""
    storage = resolve_storage(settings, checkpoint_uri)
    checkpoint = Checkpoint(storage.path, filesystem=storage.filesystem)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    with tempfile.TemporaryDirectory() as tmp:
        local = Path(checkpoint.to_directory(tmp))
        for name in (WEIGHTS_FILE, META_FILE):
            shutil.copy2(local / name, staging / name)
    if target.exists():
        old = target.with_name(f".{target.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        target.rename(old)
        staging.rename(target)
        shutil.rmtree(old)
    else:
        staging.rename(target)
    return target


def write_history(history: Sequence[EpochRecord], path: Path) -> None:
    """Per-epoch metrics as CSV (DVC plots), written to a temp file and renamed."""
    with atomic_path(path) as tmp, tmp.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(EpochRecord.model_fields))
        writer.writeheader()
        for record in history:
            writer.writerow(record.model_dump())
