"""Driver-side display: one compact line per epoch (printed by rank 0, forwarded by Ray's
log forwarding) and a final rich table of the run's epochs."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from rich.console import Console
from rich.table import Table

from gglops.core.metrics import fa_text
from gglops.stages.train.loop_config import EpochRecord


def echo(line: str) -> None:
    """Print one line from a Ray Train worker, once.

    Ray Train V2 replaces `print` in its workers: the text goes to the root logger, and also
    to the original print when sys.stdout is wrapped (as it is there), so every line reached
    the driver twice. Writing to the process's own stdout bypasses both."""
    stream = sys.__stdout__ or sys.stdout
    stream.write(line + "\n")
    stream.flush()


def epoch_line(record: EpochRecord, epochs: int, best: EpochRecord | None = None) -> str:
    """One epoch's summary; `best`: the best epoch so far by val mIoU (the newest on a tie,
    as the checkpoint choice)."""
    line = (
        f"[gglops] epoch {record.epoch + 1}/{epochs}  loss {record.train_loss:.4f}  "
        f"mIoU {record.val_miou:.4f}  nIoU {record.val_niou:.4f}  Pd {record.val_pd:.3f}  "
        f"Fa {fa_text(record.val_fa)}  {record.images_per_s:.1f} img/s  {record.epoch_s:.0f} s"
    )
    if best is not None:
        line += f"  best {best.epoch + 1} ({best.val_miou:.4f})"
    return line


def best_so_far(history: Sequence[EpochRecord]) -> EpochRecord | None:
    return max(history, key=lambda r: (r.val_miou, r.epoch), default=None)


def history_table(
    history: Sequence[EpochRecord], best_epoch: int | None, selection: str, evaluated: str
) -> Table:
    """Per-epoch scores on the selection split (`selection`: "val: val split (85 images)")."""
    table = Table(title=f"GGL-Net training (scored on {selection}, {evaluated})")
    for name in ("epoch", "train loss", "mIoU", "nIoU", "Pd", "Fa", "img/s", "s"):
        table.add_column(name, justify="right")
    for r in history:
        style = "bold green" if r.epoch == best_epoch else None
        table.add_row(
            str(r.epoch + 1),
            f"{r.train_loss:.4f}",
            f"{r.val_miou:.4f}",
            f"{r.val_niou:.4f}",
            f"{r.val_pd:.3f}",
            fa_text(r.val_fa),
            f"{r.images_per_s:.1f}",
            f"{r.epoch_s:.1f}",
            style=style,
        )
    return table


def print_history(
    console: Console,
    history: Sequence[EpochRecord],
    best_epoch: int | None,
    notes: list[str],
    selection: str,
    evaluated: str,
) -> None:
    console.print(history_table(history, best_epoch, selection, evaluated))
    for note in notes:
        console.print(note)
