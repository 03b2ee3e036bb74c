"""Driver-side display: one compact line per epoch (printed by rank 0, forwarded by Ray's
log forwarding) and a final rich table of the run's epochs."""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Console
from rich.table import Table

from gglops.train.config import EpochRecord

FA_SCALE = 1e6  # Fa is reported ×10⁻⁶, as in the IRSTD literature


def epoch_line(record: EpochRecord, epochs: int) -> str:
    return (
        f"[gglops] epoch {record.epoch + 1}/{epochs}  loss {record.train_loss:.4f}  "
        f"mIoU {record.val_miou:.4f}  nIoU {record.val_niou:.4f}  Pd {record.val_pd:.3f}  "
        f"Fa {record.val_fa * FA_SCALE:.1f}e-6  {record.images_per_s:.1f} img/s"
    )


def history_table(
    history: Sequence[EpochRecord], best_epoch: int | None, evaluated: str = "original size"
) -> Table:
    table = Table(title=f"GGL-Net training (validation on the test split, {evaluated})")
    for name in ("epoch", "train loss", "mIoU", "nIoU", "Pd", "Fa ×1e-6", "img/s", "s"):
        table.add_column(name, justify="right")
    for r in history:
        style = "bold green" if r.epoch == best_epoch else None
        table.add_row(
            str(r.epoch + 1),
            f"{r.train_loss:.4f}",
            f"{r.val_miou:.4f}",
            f"{r.val_niou:.4f}",
            f"{r.val_pd:.3f}",
            f"{r.val_fa * FA_SCALE:.1f}",
            f"{r.images_per_s:.1f}",
            f"{r.epoch_s:.1f}",
            style=style,
        )
    return table


def print_summary(
    console: Console,
    history: Sequence[EpochRecord],
    best_epoch: int | None,
    notes: list[str],
    evaluated: str = "original size",
) -> None:
    console.print(history_table(history, best_epoch, evaluated))
    for note in notes:
        console.print(note)
