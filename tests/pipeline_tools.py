"""Helpers shared by the `dvc repro` tests (default pipeline and real-dataset pipelines)."""

from __future__ import annotations

import subprocess
from pathlib import Path


def merge(base: dict, extra: dict) -> dict:
    """`extra`'s nested keys written over `base` (a params.yaml tree), in place."""
    for key, value in extra.items():
        base[key] = merge(base.get(key, {}), value) if isinstance(value, dict) else value
    return base


def run(
    cmd: list[str], cwd: Path, env: dict[str, str], timeout: float = 900
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
