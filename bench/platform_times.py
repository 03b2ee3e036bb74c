"""Wall times of the user-facing commands: CLI start-up, DVC no-op, fresh setup, demo."""

from __future__ import annotations

import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _timed(cmd: list[str], cwd: Path = ROOT, timeout: float = 900) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, cwd=cwd, check=True, capture_output=True, timeout=timeout)
    return time.perf_counter() - start


def cli_help_s(repeats: int = 5) -> float:
    """Median wall time of `gglops --help` (must not import torch/ray/mlflow)."""
    exe = str(Path(sys.executable).with_name("gglops"))
    return statistics.median(_timed([exe, "--help"]) for _ in range(repeats))


def dvc_repro_noop_s(repeats: int = 3) -> float | None:
    """Median `dvc repro` wall time when nothing changed (None before a first repro)."""
    dvc = str(Path(sys.executable).with_name("dvc"))
    status = subprocess.run([dvc, "status", "--quiet"], cwd=ROOT, capture_output=True)
    if status.returncode != 0 or not (ROOT / "dvc.lock").exists():
        return None
    return statistics.median(_timed([dvc, "repro"]) for _ in range(repeats))


def fresh_setup_s() -> float:
    """`uv pip sync` of the lock file into a brand-new venv (what `make setup` does)."""
    uv = str(Path(sys.executable).with_name("uv"))
    with tempfile.TemporaryDirectory() as tmp:
        venv = Path(tmp) / "venv"
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
        subprocess.run(
            [
                uv,
                "pip",
                "sync",
                "--python",
                str(venv / "bin" / "python"),
                "--find-links",
                "/opt/wheels",
                str(ROOT / "requirements.lock"),
            ],
            check=True,
            capture_output=True,
            timeout=900,
        )
        elapsed = time.perf_counter() - start
        shutil.rmtree(venv, ignore_errors=True)
    return elapsed


def demo_s() -> float:
    """`make demo` from this checkout (stack up, dvc repro --force, summary)."""
    return _timed(["make", "demo", "DEMO_FORCE=1"], timeout=1800)
