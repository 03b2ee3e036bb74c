"""One plain line per trial epoch and per finished trial, in place of Tune's status tables.

Tune's own reporter (`RunConfig(verbose=1)`) redraws a table of every trial every 30 s and
adds TensorBoard and configuration blocks; the sweep runs it at verbose 0 and logs these
lines instead (logger `gglops.stages.tune`), which read the same on a terminal and in a CI log.
"""

from __future__ import annotations

import logging
from typing import Any

from ray import tune

from gglops.core.metrics import fa_text
from gglops.stages.tune.trial import EPOCHS_DONE, trial_label

log = logging.getLogger(__name__)


class TrialLines(tune.Callback):
    """Logs `trial-001 lr=0.001  epoch 3/6  loss 0.6878  val_miou 0.1234 …` per result."""

    def __init__(self, epochs: int, metric: str, mode: str) -> None:
        self.epochs, self.metric, self.sign = epochs, metric, 1.0 if mode == "max" else -1.0
        self.best: dict[str, float] = {}
        self.last_epoch: dict[str, int] = {}

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info):
        epoch = int(result.get(EPOCHS_DONE, result.get("epoch", 0) + 1))
        score = float(result.get(self.metric, float("nan")))
        seen = self.best.get(trial.trial_id)
        if seen is None or self.sign * score > self.sign * seen:
            self.best[trial.trial_id] = score
        self.last_epoch[trial.trial_id] = epoch
        log.info(
            "%s  epoch %d/%d  loss %.4f  %s %.4f  Pd %.3f  Fa %s  %.0f s",
            _label(trial), epoch, self.epochs, result.get("train_loss", float("nan")),
            self.metric, score, result.get("val_pd", float("nan")),
            fa_text(float(result.get("val_fa", float("nan")))),
            result.get("time_this_iter_s", float("nan")),
        )  # fmt: skip

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info):
        score = self.best.get(trial.trial_id, float("nan"))
        epoch = self.last_epoch.get(trial.trial_id, 0)  # ASHA stops a trial before the last
        stopped = epoch < self.epochs
        how = f"stopped by ASHA after epoch {epoch}" if stopped else "finished"
        log.info("%s  %s: best %s %.4f", _label(trial), how, self.metric, score)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info):
        log.warning("%s  failed; its error is in %s", _label(trial), trial.local_path)


def _label(trial: Any) -> str:
    return trial_label(trial.trial_id, trial.config)
