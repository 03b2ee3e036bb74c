"""The per-epoch line: loss, val metrics, time, and the best epoch so far."""

from __future__ import annotations

from gglops.stages.train.loop_config import EpochRecord
from gglops.stages.train.progress import best_so_far, epoch_line


def _record(epoch: int, miou: float) -> EpochRecord:
    return EpochRecord(
        epoch=epoch,
        train_loss=0.5,
        val_miou=miou,
        val_niou=miou,
        val_pd=0.9,
        val_fa=1e-5,
        images_per_s=9.5,
        epoch_s=48.2,
    )


def test_the_line_names_the_best_epoch_so_far_the_newest_on_a_tie() -> None:
    history = [_record(0, 0.2), _record(1, 0.6), _record(2, 0.4), _record(3, 0.6)]
    best = best_so_far(history[:3])
    assert best is not None and best.epoch == 1
    assert best_so_far(history) == history[3]  # as the checkpoint choice: newest on a tie
    line = epoch_line(history[2], 40, best)
    assert line.startswith("[gglops] epoch 3/40  loss 0.5000  mIoU 0.4000")
    assert line.endswith("9.5 img/s  48 s  best 2 (0.6000)")
    assert "\r" not in line and "\x1b" not in line  # plain text: a log file reads it as is
    assert best_so_far([]) is None
