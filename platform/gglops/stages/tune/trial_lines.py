"""What a sweep says about its trials as they run, in place of Tune's status tables.

Tune's own reporter (`RunConfig(verbose=1)`) redraws a table of every trial every 30 s and
adds TensorBoard and configuration blocks; the sweep runs it at verbose 0 and this callback
turns each trial result into a `TrialUpdate`: handed to the caller's renderer when there is
one (the CLI's live table), else logged as one plain line (logger `gglops.stages.tune`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ray import tune

from gglops.core.metrics import fa_text
from gglops.stages.tune.trial import EPOCHS_DONE, trial_label

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrialUpdate:
    """One trial's state after a result or at its end; `text` is its plain line."""

    trial_id: str
    label: str  # `trial-003 lr=0.0021`
    epoch: int  # epochs done
    epochs: int
    loss: float
    best: float  # the trial's best value of the sweep metric so far
    state: str  # running | finished | stopped | failed
    text: str


TrialHandler = Callable[[TrialUpdate], None]


class TrialLines(tune.Callback):
    """`trial-001 lr=0.001  epoch 3/6  loss 0.6878  val_miou 0.1234 …` per result, and
    `… finished: best val_miou 0.4567` (or stopped by ASHA, or failed) per trial."""

    def __init__(
        self, epochs: int, metric: str, mode: str, on_update: TrialHandler | None = None
    ) -> None:
        self.epochs, self.metric, self.sign = epochs, metric, 1.0 if mode == "max" else -1.0
        self.on_update = on_update
        self.best: dict[str, float] = {}
        self.last_epoch: dict[str, int] = {}
        self.loss: dict[str, float] = {}

    def __getstate__(self) -> dict[str, Any]:
        """Tune pickles its callbacks into the sweep's state; a renderer (a live console) is
        this process's only, so a restored sweep logs its lines instead."""
        return self.__dict__ | {"on_update": None}

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info):
        epoch = int(result.get(EPOCHS_DONE, result.get("epoch", 0) + 1))
        score = float(result.get(self.metric, float("nan")))
        seen = self.best.get(trial.trial_id)
        if seen is None or self.sign * score > self.sign * seen:
            self.best[trial.trial_id] = score
        self.last_epoch[trial.trial_id] = epoch
        loss = self.loss[trial.trial_id] = float(result.get("train_loss", float("nan")))
        text = (
            f"{_label(trial)}  epoch {epoch}/{self.epochs}  loss {loss:.4f}  "
            f"{self.metric} {score:.4f}  Pd {result.get('val_pd', float('nan')):.3f}  "
            f"Fa {fa_text(float(result.get('val_fa', float('nan'))))}  "
            f"{result.get('time_this_iter_s', float('nan')):.0f} s"
        )
        self._say(trial, "running", text)

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info):
        score = self.best.get(trial.trial_id, float("nan"))
        epoch = self.last_epoch.get(trial.trial_id, 0)  # ASHA stops a trial before the last
        stopped = epoch < self.epochs
        how = f"stopped by ASHA after epoch {epoch}" if stopped else "finished"
        text = f"{_label(trial)}  {how}: best {self.metric} {score:.4f}"
        self._say(trial, "stopped" if stopped else "finished", text)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info):
        self._say(trial, "failed", f"{_label(trial)}  failed; its error is in {trial.local_path}")

    def _say(self, trial: Any, state: str, text: str) -> None:
        tid = trial.trial_id
        update = TrialUpdate(
            trial_id=tid,
            label=_label(trial),
            epoch=self.last_epoch.get(tid, 0),
            epochs=self.epochs,
            loss=self.loss.get(tid, float("nan")),
            best=self.best.get(tid, float("nan")),
            state=state,
            text=text,
        )
        if self.on_update is not None:
            self.on_update(update)
        elif state == "failed":
            log.warning(text)
        else:
            log.info(text)


def _label(trial: Any) -> str:
    return trial_label(trial.trial_id, trial.config)
