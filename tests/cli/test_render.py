"""The train console: a live bar on a terminal, plain lines elsewhere; rank 0's throttle."""

from __future__ import annotations

import io

import torch
from rich.console import Console

from gglops.cli.render import TrainProgress, TuneProgress, result_block
from gglops.stages.train.progress import ProgressEvent, StepReporter
from gglops.stages.tune.trial_lines import TrialUpdate

LINE = "[gglops] epoch 1/2  loss 0.5000  mIoU 0.4000"


def _events() -> list[ProgressEvent]:
    steps = [
        ProgressEvent("step", 0, 2, step=s, steps=4, loss=0.5, images_per_s=9.0) for s in (1, 4)
    ]
    return [
        *steps,
        ProgressEvent("validate", 0, 2),
        ProgressEvent("epoch", 0, 2, text=LINE),
        ProgressEvent("note", 1, 2, text="restoring from /x/epoch-0000"),
    ]


def _render(terminal: bool) -> str:
    buffer = io.StringIO()
    out = Console(file=buffer, force_terminal=terminal, width=120, highlight=False)
    with TrainProgress(out) as progress:
        for event in _events():
            progress(event)
    return buffer.getvalue()


def test_without_a_terminal_only_the_epoch_lines_and_notes_are_printed_plainly() -> None:
    text = _render(terminal=False)
    assert text.splitlines() == [LINE, "restoring from /x/epoch-0000"]
    assert "\x1b" not in text and "\r" not in text


def test_on_a_terminal_the_bar_is_drawn_and_the_epoch_line_stays() -> None:
    text = _render(terminal=True)
    assert "epoch 1/2" in text and "4/4" in text and "9.0 img/s" in text, text
    assert "\x1b[" in text  # redrawn in place
    assert LINE in text


class _Channel:
    def __init__(self) -> None:
        self.events: list[ProgressEvent] = []

    def put(self, event: ProgressEvent, block: bool = True) -> None:
        self.events.append(event)


def test_rank_zero_sends_at_most_one_step_per_interval_and_always_the_last() -> None:
    channel = _Channel()
    reporter = StepReporter(channel, epochs=3, world=2, interval=3600.0)
    reporter.start_epoch(1)
    for step in range(1, 11):
        reporter.step(step, 10, torch.tensor(float(step)), step * 2)
    assert [(e.kind, e.step, e.epoch) for e in channel.events] == [("step", 10, 1)]
    assert channel.events[0].loss == 0.5  # the running mean: 10 / 20 images

    eager = StepReporter(_Channel(), epochs=3, interval=0.0)
    eager.start_epoch(0)
    for step in range(1, 4):
        eager.step(step, 3, torch.tensor(1.0), step)
    assert [e.step for e in eager.channel.events] == [1, 2, 3]


def test_a_lost_channel_never_stops_training() -> None:
    class Broken:
        def put(self, event: ProgressEvent, block: bool = True) -> None:
            raise ConnectionError("queue actor died")

    reporter = StepReporter(Broken(), epochs=1, interval=0.0)
    reporter.start_epoch(0)
    reporter.step(1, 1, torch.tensor(1.0), 1)  # no exception
    reporter.epoch_done(LINE)


def test_the_result_block_names_what_was_made_and_what_comes_next() -> None:
    buffer = io.StringIO()
    result_block(
        Console(file=buffer, width=200),
        "trained",
        [("run", "r-1 (abc)"), ("files", "")],
        "gglops register abc",
    )
    assert buffer.getvalue().splitlines() == [
        "trained",
        "  run    r-1 (abc)",
        "next: gglops register abc",
    ]


def _update(state: str, epoch: int) -> TrialUpdate:
    text = f"trial-001 lr=0.001  epoch {epoch}/2  loss 0.5000"
    return TrialUpdate("t_00001", "trial-001 lr=0.001", epoch, 2, 0.5, 0.25, state, text)


def test_the_sweep_is_a_live_table_on_a_terminal_and_plain_lines_elsewhere() -> None:
    for terminal in (False, True):
        buffer = io.StringIO()
        out = Console(file=buffer, force_terminal=terminal, width=120)
        with TuneProgress(out, "val_miou") as progress:
            progress(_update("running", 1))
            progress(_update("finished", 2))
        text = buffer.getvalue()
        if terminal:
            assert "best val_miou" in text and "finished" in text and "2/2" in text, text
        else:
            assert text.splitlines() == [_update("running", 1).text, _update("finished", 2).text]


def test_count_bar_draws_on_a_terminal_and_leaves_the_work_its_own_lines_elsewhere() -> None:
    from gglops.cli.render import count_bar

    plain = io.StringIO()
    with count_bar(Console(file=plain, force_terminal=False), "hashing /data") as count:
        assert count is None  # the work logs its own occasional lines instead
    assert plain.getvalue() == ""
    drawn = io.StringIO()
    with count_bar(Console(file=drawn, force_terminal=True, width=100), "hashing /data") as count:
        assert count is not None
        for done in range(1, 5):
            count(done, 4)
    assert "hashing /data" in drawn.getvalue() and "4/4" in drawn.getvalue()


def test_phases_are_plain_lines_without_a_terminal_and_a_spinner_on_one() -> None:
    from gglops.cli.render import phases

    plain = io.StringIO()
    with phases(Console(file=plain, force_terminal=False, width=200), "promote") as phase:
        phase("evaluating candidate v3")
        phase("uploading to s3://gglops/models/gglnet/3")
    assert plain.getvalue().splitlines() == [
        "promote: evaluating candidate v3",
        "promote: uploading to s3://gglops/models/gglnet/3",
    ]
    drawn = io.StringIO()
    with phases(Console(file=drawn, force_terminal=True, width=100), "promote") as phase:
        phase("exporting v3 to ONNX")
    assert "\x1b[" in drawn.getvalue()  # redrawn in place, not a line per phase


def test_quiet_leaves_out_progress(monkeypatch) -> None:
    from gglops.cli.render import count_bar, phases

    monkeypatch.setenv("GGLOPS_LOG_LEVEL", "WARNING")  # what --quiet sets
    buffer = io.StringIO()
    with phases(Console(file=buffer, force_terminal=False), "promote") as phase:
        phase("evaluating candidate v3")
    with count_bar(Console(file=buffer, force_terminal=True), "hashing /data") as count:
        assert count is None
    assert buffer.getvalue() == ""
