"""The git commit of the working tree, for lineage tags ("unknown" outside a git checkout)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

UNKNOWN = "unknown"
# Where a run has no checkout (a Ray Job's uploaded working dir, an image): the commit it was
# submitted or built from (`gglops submit` and the Dockerfile set it).
COMMIT_ENV = "GGLOPS_GIT_COMMIT"


def git_commit(cwd: str | Path | None = None) -> str:
    """HEAD's sha, suffixed `-dirty` when tracked files have uncommitted changes."""
    try:
        sha = _git(["rev-parse", "HEAD"], cwd)
        dirty = _git(["status", "--porcelain", "--untracked-files=no"], cwd)
    except (OSError, subprocess.SubprocessError):
        return os.environ.get(COMMIT_ENV) or UNKNOWN
    return f"{sha}-dirty" if dirty else sha


def _git(args: list[str], cwd: str | Path | None) -> str:
    done = subprocess.run(
        ["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10, check=True
    )
    return done.stdout.strip()
