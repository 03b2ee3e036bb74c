"""Wall times of the user-facing commands: CLI start-up, DVC no-op, fresh setup.

Each runs the real command in a scratch place, never in this checkout's own workspace:
- `cli_help_s`: median of `gglops --help` (must not import torch/ray/mlflow).
- `dvc_repro_noop_s`: a `git clone` of HEAD runs `dvc repro validate` for real (synth +
  validate on the default params), then `dvc repro validate` with nothing changed is timed:
  DVC start-up, dvc.yaml/params parsing, hashing the data stages' deps and outs. The whole
  pipeline's no-op needs a completed demo (stack, tune, train); bench.demo times that one.
- `fresh_setup_s`: `make setup` into a new venv with an empty uv cache (what a fresh
  machine does from requirements.lock: venv, uv, `uv pip sync`, editable install).
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def tool_env() -> dict[str, str]:
    """This venv's tools first on PATH (what `make demo` does for the stage commands)."""
    return {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}


def _timed(cmd: list[str], cwd: Path = ROOT, timeout: float = 900, **env: str) -> float:
    start = time.perf_counter()
    subprocess.run(
        cmd, cwd=cwd, check=True, capture_output=True, timeout=timeout, env=tool_env() | env
    )
    return time.perf_counter() - start


def cli_help_s(repeats: int = 5) -> float:
    """Median wall time of `gglops --help`."""
    return statistics.median(_timed([str(BIN / "gglops"), "--help"]) for _ in range(repeats))


def clone_head(dest: Path) -> Path:
    """A fresh clone of this repository's HEAD (committed files only, like a user's)."""
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(dest)], check=True)
    return dest


def dvc_repro_noop_s(repeats: int = 3) -> float:
    """Median no-op `dvc repro validate` in a scratch clone after a real first repro."""
    dvc = str(BIN / "dvc")
    with tempfile.TemporaryDirectory() as tmp:
        repo = clone_head(Path(tmp) / "repo")
        _timed([dvc, "repro", "validate"], cwd=repo)
        return statistics.median(
            _timed([dvc, "repro", "validate"], cwd=repo) for _ in range(repeats)
        )


def fresh_setup_s() -> float:
    """`make setup` into a brand-new venv with an empty uv cache."""
    with tempfile.TemporaryDirectory() as tmp:
        venv, cache = Path(tmp) / "venv", Path(tmp) / "uv-cache"
        elapsed = _timed(
            ["make", "--no-print-directory", "setup", f"VENV={venv}"], UV_CACHE_DIR=str(cache)
        )
        shutil.rmtree(tmp, ignore_errors=True)  # 2 GB: free it before the next bench
    return elapsed


def measure() -> dict[str, float]:
    figures = {"cli_help_s": cli_help_s()}
    print(f"[bench] cli_help_s {figures['cli_help_s']:.2f}", flush=True)
    figures["dvc_repro_noop_s"] = dvc_repro_noop_s()
    print(f"[bench] dvc_repro_noop_s {figures['dvc_repro_noop_s']:.2f}", flush=True)
    figures["fresh_setup_s"] = fresh_setup_s()
    print(f"[bench] fresh_setup_s {figures['fresh_setup_s']:.1f}", flush=True)
    return figures
