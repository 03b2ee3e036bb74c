"""`gglops --quiet` / `--verbose`: the level of the gglops loggers, here and in what a command
starts."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from fixtures_cli import CliRunner

BIN = Path(sys.executable).parent


def test_quiet_and_verbose_together_are_one_line_exit_2() -> None:
    done = subprocess.run(
        [str(BIN / "gglops"), "-q", "-v", "stack", "status"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    lines = (done.stdout + done.stderr).strip().splitlines()
    assert len(lines) == 1 and "--quiet and --verbose exclude each other" in lines[0]


@pytest.mark.parametrize(("flag", "level"), [("--quiet", "WARNING"), ("--verbose", "DEBUG")])
def test_the_level_reaches_the_loggers_and_the_processes_a_command_starts(
    gglops_cli: CliRunner, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, flag: str, level: str
) -> None:
    # setenv (not delenv of an absent name) so that the test's end restores both variables:
    # the command sets them for the processes it starts, and later tests start processes too.
    monkeypatch.setenv("GGLOPS_LOG_LEVEL", "INFO")
    monkeypatch.setenv("MLFLOW_LOGGING_LEVEL", "WARNING")
    logger = logging.getLogger("gglops")
    monkeypatch.setattr(logger, "level", logger.level)  # restored after the test
    code, out = gglops_cli([flag, "data", "synth", str(tmp_path / "d"), "--n", "4", "--size", "32"])
    assert code == 0, out
    assert logger.level == logging.getLevelName(level)
    # Ray workers and subprocesses read it from the environment.
    assert os.environ["GGLOPS_LOG_LEVEL"] == level
