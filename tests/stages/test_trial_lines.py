"""The sweep's console lines: one per trial epoch, one per finished or stopped trial."""

from __future__ import annotations

import logging
from types import SimpleNamespace

import pytest

from gglops.stages.tune.trial import EPOCHS_DONE
from gglops.stages.tune.trial_lines import TrialLines


def _result(epoch: int, miou: float) -> dict[str, float]:
    return {EPOCHS_DONE: epoch, "val_miou": miou, "train_loss": 0.5, "val_pd": 0.9, "val_fa": 0.0}


@pytest.mark.parametrize(
    ("epochs_run", "verdict"), [(6, "finished"), (4, "stopped by ASHA after epoch 4")]
)
def test_a_trial_is_finished_or_stopped_by_its_last_epoch_not_its_best(
    caplog: pytest.LogCaptureFixture, epochs_run: int, verdict: str
) -> None:
    lines = TrialLines(epochs=6, metric="val_miou", mode="max")
    trial = SimpleNamespace(trial_id="abc_00002", config={"train.lr": 0.00084})
    scores = [0.1, 0.3, 0.5, 0.58, 0.4, 0.45][:epochs_run]  # the best comes before the last
    with caplog.at_level(logging.INFO, logger="gglops"):
        for epoch, score in enumerate(scores, start=1):
            lines.on_trial_result(0, [], trial, _result(epoch, score))
        lines.on_trial_complete(0, [], trial)
    messages = [record.getMessage() for record in caplog.records]
    assert len(messages) == epochs_run + 1
    assert messages[0].startswith("trial-002 lr=0.00084  epoch 1/6  loss 0.5000  val_miou 0.1000")
    assert messages[-1] == f"trial-002 lr=0.00084  {verdict}: best val_miou 0.5800"


def test_the_callback_pickles_without_its_renderer() -> None:
    import pickle
    import threading

    lock = threading.RLock()  # what a live console holds: not picklable
    lines = TrialLines(epochs=2, metric="val_miou", mode="max", on_update=lambda u: lock)
    restored = pickle.loads(pickle.dumps(lines))
    assert restored.on_update is None and restored.epochs == 2
