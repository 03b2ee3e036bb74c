"""Training progress: rank 0 sends events (steps, epoch lines, notes) over a Ray queue and
a driver thread hands them to a renderer (the CLI's); the text of one epoch's line."""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch

from gglops.core.metrics import fa_text
from gglops.stages.train.loop_config import EpochRecord

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ProgressEvent:
    """One thing rank 0 says about the run; `kind` is step, validate, epoch or note."""

    kind: str
    epoch: int  # 0-based
    epochs: int
    step: int = 0
    steps: int = 0
    loss: float = 0.0  # running mean of the epoch's training loss
    images_per_s: float = 0.0  # all workers together
    text: str = ""  # epoch: the epoch line; note: the note


ProgressHandler = Callable[[ProgressEvent], None]


class StepReporter:
    """Rank 0's end of the channel. Step events go out at most every `interval` seconds (a
    loss value costs a host sync on a GPU, a queue put a round trip); the last step of an
    epoch always goes."""

    def __init__(self, channel: Any | None, epochs: int, world: int = 1, interval: float = 0.5):
        self.channel, self.epochs, self.world, self.interval = channel, epochs, world, interval
        self.epoch_index, self.started, self.sent = 0, 0.0, 0.0

    @property
    def active(self) -> bool:
        return self.channel is not None

    def start_epoch(self, epoch: int) -> None:
        self.epoch_index, self.started = epoch, time.perf_counter()
        self.sent = self.started

    def step(self, step: int, steps: int, loss_sum: torch.Tensor, images: int) -> None:
        now = time.perf_counter()
        if step < steps and now - self.sent < self.interval:
            return
        self.sent = now
        rate = images * self.world / max(now - self.started, 1e-9)
        loss = float(loss_sum.item()) / max(images, 1)
        self._put("step", step=step, steps=steps, loss=loss, images_per_s=rate)

    def validating(self) -> None:
        self._put("validate")

    def epoch_done(self, line: str) -> None:
        self._put("epoch", text=line)

    def note(self, text: str) -> None:
        self._put("note", text=text)

    def _put(self, kind: str, **fields: Any) -> None:
        if self.channel is None:
            return
        event = ProgressEvent(kind=kind, epoch=self.epoch_index, epochs=self.epochs, **fields)
        try:
            self.channel.put(event, block=False)
        except Exception:  # a display must never stop training (driver gone, queue actor lost)
            log.debug("progress event dropped", exc_info=True)


@contextmanager
def progress_channel(handler: ProgressHandler | None) -> Iterator[Any | None]:
    """A Ray queue that rank 0 writes and a driver thread drains into `handler` (None: no
    channel). Everything queued is handed over before the context ends."""
    if handler is None:
        yield None
        return
    from ray.util.queue import Queue

    channel = Queue(actor_options={"num_cpus": 0})
    stop = threading.Event()
    thread = threading.Thread(target=_drain, args=(channel, handler, stop), daemon=True)
    thread.start()
    try:
        yield channel
    finally:
        stop.set()
        thread.join()
        channel.shutdown()


def _drain(channel: Any, handler: ProgressHandler, stop: threading.Event) -> None:
    from ray.util.queue import Empty

    while True:
        try:
            handler(channel.get(block=True, timeout=0.2))
        except Empty:
            if stop.is_set():
                return
        except Exception:  # the queue actor died with the run: nothing more will come
            log.debug("progress channel closed", exc_info=True)
            return


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
