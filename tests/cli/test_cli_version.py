"""`gglops --version`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import gglops

BIN = Path(sys.executable).parent


def test_version_flag_prints_the_package_version() -> None:
    done = subprocess.run(
        [str(BIN / "gglops"), "--version"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"gglops {gglops.__version__}\n"
