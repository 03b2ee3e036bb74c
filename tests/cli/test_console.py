"""What `gglops train` shows a user on a terminal (a pseudo-terminal here): a live progress
bar, then the epoch lines and the result block, none of Ray's chatter; Ray's logs folder is
named once. It starts its own local Ray, as a user's first run does. The console without a
terminal (CI, `dvc repro` into a file) is held to its rules on the NUAA-SIRST pipeline's
output (tests/system/test_pipelines_real.py) and on `gglops tune`'s (tests/stages)."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from helpers.training import tiny_params

BIN = Path(sys.executable).parent
EPOCHS = 2
# Ray's own lines that used to reach the console: its Train INFO lines, actors' errors and
# tracebacks, Tune's hints.
NOISE = (
    "Checkpoint successfully created",
    "Reporting training result",
    "core_worker",
    "PreemptionWatcher",
    "PlacementGroupCleaner",
    "TrainController",
    "TensorBoard",
    "Traceback",
    "(RayTrainWorker",
)
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


@pytest.fixture
def train_cmd(stack: Any, synth_data: Path, tmp_path: Path) -> tuple[list[str], dict[str, str]]:
    params = tiny_params(synth_data, **{"train.epochs": EPOCHS, "train.run_name": "console"})
    params_file = tmp_path / "params.yaml"
    params_file.write_text(yaml.safe_dump(params.model_dump(mode="json")))
    own = ("GGLOPS_", "RAY_ADDRESS")
    env = {k: v for k, v in os.environ.items() if not k.startswith(own)}
    env |= stack.env | {"GGLOPS_STORAGE_PATH": str(tmp_path / "ray"), "COLUMNS": "120"}
    return [str(BIN / "gglops"), "train", "--params", str(params_file)], env


def _logs_named_once(output: str) -> Path:
    logs = re.findall(r"^logs: (\S+) ", output, re.M)
    assert len(logs) == 1, output
    return Path(logs[0])


@pytest.mark.integration
def test_on_a_terminal_train_draws_a_progress_bar_then_the_epochs_and_the_result(
    train_cmd: tuple[list[str], dict[str, str]], tmp_path: Path
) -> None:
    cmd, env = train_cmd
    typescript = tmp_path / "typescript"
    # util-linux `script` runs the command under a pseudo-terminal and records what it drew.
    wrapped = ["script", "-qec", shlex.join(cmd), str(typescript)]
    done = subprocess.run(wrapped, env=env, capture_output=True, text=True, timeout=300)
    screen = typescript.read_text(errors="replace")
    assert done.returncode == 0, screen[-3000:]
    assert "\x1b[" in screen  # drawn and redrawn in place
    bar = [line for line in ANSI.sub("", screen).split("\r") if "img/s" in line and "eta" in line]
    assert bar, screen[-3000:]  # the live bar: epoch, steps, loss, img/s, ETA
    text = ANSI.sub("", screen)
    assert not [n for n in NOISE if n in text], text[-3000:]
    for epoch in range(1, EPOCHS + 1):
        assert f"[gglops] epoch {epoch}/{EPOCHS}" in text
    assert any(_logs_named_once(text).glob("worker-*.out"))  # Ray's lines are there
    tail = text.strip().splitlines()[-8:]
    assert any(line.startswith("next: gglops register") for line in tail), tail
