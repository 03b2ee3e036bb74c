"""How long commands look on the console: a live progress bar on a terminal, plain lines
elsewhere (CI, `dvc repro` into a file, a Ray job's log), and the block that ends a run."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from types import TracebackType
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.live import Live
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

if TYPE_CHECKING:
    from gglops.stages.train.loop_config import EpochRecord
    from gglops.stages.train.progress import ProgressEvent
    from gglops.stages.tune.result import TrialSummary
    from gglops.stages.tune.trial_lines import TrialUpdate

STATUS_STYLE = {"completed": "green", "stopped": "yellow", "error": "red", "unfinished": "dim"}
STATE_STYLE = {"running": "cyan", "finished": "green", "stopped": "yellow", "failed": "red"}


def console() -> Console:
    """The result console: stdout, no syntax highlighting of numbers and paths."""
    return Console(highlight=False, soft_wrap=True)


def errors() -> Console:
    """The progress console: stderr, so stdout stays what a pipeline or a script reads."""
    return Console(stderr=True, highlight=False, soft_wrap=True)


Count = Callable[[int, int], None]  # (done, total): how far a counted task has gone


def _quiet() -> bool:
    """--quiet (GGLOPS_LOG_LEVEL above INFO): results only, no progress."""
    level = logging.getLevelName(os.environ.get("GGLOPS_LOG_LEVEL", "INFO").upper())
    return isinstance(level, int) and level > logging.INFO


@contextmanager
def count_bar(out: Console, label: str) -> Iterator[Count | None]:
    """A transient bar (label, bar, done/total, ETA) for work counted in files or images, on
    a terminal. Elsewhere (or --quiet) None: the work logs its own occasional lines, if any."""
    if not out.is_terminal or _quiet():
        yield None
        return
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
    with Progress(*columns, TimeRemainingColumn(), console=out, transient=True) as bar:
        task = bar.add_task(label, total=None)
        yield lambda done, total: bar.update(task, completed=done, total=total)


@contextmanager
def phases(out: Console, label: str) -> Iterator[Callable[[str], None]]:
    """Names each phase of a multi-step command as it starts: a spinner line redrawn in
    place on a terminal, one plain `label: phase` line each elsewhere; nothing under --quiet."""
    if _quiet():
        yield lambda phase: None
        return
    if not out.is_terminal:
        yield lambda phase: out.print(f"{label}: {escape(phase)}")
        return
    with out.status(label) as status:
        yield lambda phase: status.update(f"{escape(label)}: {escape(phase)}")


class TrainProgress:
    """Renders `gglops train`'s progress events.

    On a terminal: one bar for the current epoch (step, running loss, images/s, ETA),
    redrawn in place, with each finished epoch's line printed above it. Without one: the
    epoch lines and notes only, one plain line each (no bar, no control characters)."""

    def __init__(self, out: Console) -> None:
        self.out = out
        self.live = out.is_terminal
        self.bar: Progress | None = None
        self.task: TaskID | None = None
        self.epoch = -1  # the epoch the bar shows
        self.handlers: dict[str, Callable[[ProgressEvent], None]] = {
            "step": self._step,
            "validate": self._validate,
            "epoch": self._epoch,
            "note": self._note,
        }

    def __enter__(self) -> TrainProgress:
        if self.live:
            self.bar = Progress(
                TextColumn("[bold]epoch {task.fields[epoch]}[/]"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("loss {task.fields[loss]}  {task.fields[rate]} img/s"),
                TimeElapsedColumn(),
                TextColumn("eta"),
                TimeRemainingColumn(),
                TextColumn("{task.fields[phase]}"),
                console=self.out,
                transient=True,
            )
            self.bar.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self.bar is not None:
            self.bar.stop()

    def __call__(self, event: ProgressEvent) -> None:
        self.handlers.get(event.kind, self._note)(event)

    def _step(self, event: ProgressEvent) -> None:
        if self.bar is None:
            return
        fields: dict[str, Any] = {
            "epoch": f"{event.epoch + 1}/{event.epochs}",
            "loss": f"{event.loss:.4f}",
            "rate": f"{event.images_per_s:.1f}",
            "phase": "",
        }
        if self.task is None:
            self.task = self.bar.add_task("train", total=event.steps, **fields)
        elif event.epoch != self.epoch:  # a new epoch: its own ETA, from zero
            self.bar.reset(self.task, total=event.steps, **fields)
        self.epoch = event.epoch
        self.bar.update(self.task, completed=event.step, **fields)

    def _validate(self, event: ProgressEvent) -> None:
        if self.bar is not None and self.task is not None:
            self.bar.update(self.task, phase="validating")

    def _epoch(self, event: ProgressEvent) -> None:
        if self.bar is not None and self.task is not None:
            self.bar.update(self.task, phase="")
        self.out.print(escape(event.text), highlight=False)

    def _note(self, event: ProgressEvent) -> None:
        self.out.print(escape(event.text), highlight=False)


def history_table(
    history: Sequence[EpochRecord], best_epoch: int | None, selection: str, evaluated: str
) -> Table:
    """Per-epoch scores on the selection split (`selection`: "val: val split (85 images)")."""
    from gglops.core.metrics import fa_text

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


def result_block(
    out: Console, title: str, rows: Sequence[tuple[str, str]], next_step: str = ""
) -> None:
    """What a command produced and where, then the command a user would likely run next."""
    out.print(f"[bold]{escape(title)}[/]")
    width = max((len(label) for label, _ in rows), default=0)
    for label, value in rows:
        if value:
            out.print(f"  {label:<{width}}  {escape(value)}")
    if next_step:
        out.print(f"[bold]next:[/] {escape(next_step)}")


class TuneProgress:
    """Renders a sweep's trial updates: on a terminal one live table of the trials (label,
    epoch, loss, best metric, state) redrawn in place; without one, each update's line."""

    def __init__(self, out: Console, metric: str) -> None:
        self.out, self.metric = out, metric
        self.rows: dict[str, TrialUpdate] = {}
        self.live: Live | None = None

    def __enter__(self) -> TuneProgress:
        if self.out.is_terminal:
            self.live = Live(self._table(), console=self.out, refresh_per_second=4)
            self.live.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self.live is not None:
            self.live.stop()

    def __call__(self, update: TrialUpdate) -> None:
        if self.live is None:
            self.out.print(escape(update.text), highlight=False)
            return
        self.rows[update.trial_id] = update
        self.live.update(self._table())

    def _table(self) -> Table:
        table = Table(title="trials", title_justify="left")
        for name in ("trial", "epoch", "loss", f"best {self.metric}", "state"):
            table.add_column(name, justify="left" if name == "trial" else "right")
        for u in sorted(self.rows.values(), key=lambda u: u.label):
            table.add_row(
                u.label,
                f"{u.epoch}/{u.epochs}",
                f"{u.loss:.4f}",
                f"{u.best:.4f}",
                f"[{STATE_STYLE.get(u.state, 'white')}]{u.state}[/]",
            )
        return table


def trials_table(trials: Sequence[TrialSummary], metric: str, best_id: str | None) -> Table:
    """The finished sweep: every trial's sampled values, epochs run, best metric and status."""
    keys = sorted({k for t in trials for k in t.params})
    table = Table(title=f"Tune trials (best {metric} per trial)")
    for name in ("trial", *keys, "epochs", metric, "status", "s"):
        table.add_column(name, justify="right")
    for t in trials:
        score = t.best.get(metric)
        table.add_row(
            str(t.index),
            *(_short(t.params.get(k)) for k in keys),
            str(t.epochs),
            "-" if score is None else f"{score:.4f}",
            f"[{STATUS_STYLE[t.status]}]{t.status}[/]",
            f"{t.duration_s:.0f}",
            style="bold" if t.trial_id == best_id else None,
        )
    return table


def _short(value: object) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)
