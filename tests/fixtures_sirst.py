"""`nuaa_sirst_source`: the byte-exact local copy of the public NUAA-SIRST dataset.

The copy lives outside the repository, in its parent folder's `shared/datasets/nuaa-sirst`
(see SOURCE.md there). Without it a test that needs it is skipped, naming the path, except
under CI=true, where a missing copy fails the test: CI must not pass by skipping.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# NUAA_SOURCE (as `make demo-real` reads it) names a copy elsewhere.
NUAA_SIRST_COPY = Path(
    os.environ.get("NUAA_SOURCE")
    or Path(__file__).resolve().parents[2] / "shared" / "datasets" / "nuaa-sirst"
)


def require_local_copy(path: Path) -> Path:
    """`path` if it holds a dataset copy; else skip (fail under CI=true) naming it."""
    if (path / "images").is_dir():
        return path
    why = f"local NUAA-SIRST copy not found at {path}"
    if os.environ.get("CI") == "true":
        pytest.fail(f"{why} (CI=true: the copy is required)")
    pytest.skip(why)


@pytest.fixture(scope="session")
def nuaa_sirst_source() -> Path:
    """Root of the local NUAA-SIRST copy (a `--source` for `gglops data fetch`). Read-only."""
    return require_local_copy(NUAA_SIRST_COPY)
