"""`gglops_cli`: run the real CLI in the test process (no interpreter start-up, the shared
local Ray) and get its exit code and everything it printed."""

from __future__ import annotations

import sys
from collections.abc import Callable

import pytest

from gglops.cli import main as cli_main

CliRunner = Callable[[list[str]], tuple[int, str]]


@pytest.fixture
def gglops_cli(capsys: pytest.CaptureFixture[str]) -> CliRunner:
    def run(args: list[str]) -> tuple[int, str]:
        old = sys.argv
        sys.argv = ["gglops", *args]
        try:
            cli_main()
            code = 0
        except SystemExit as exc:
            code = int(exc.code or 0)
        finally:
            sys.argv = old
        captured = capsys.readouterr()
        return code, captured.out + captured.err

    return run
