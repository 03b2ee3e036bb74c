"""Synthetic datasets written by the project's own generator."""

from __future__ import annotations

from pathlib import Path

import pytest

SYNTH_N, SYNTH_SIZE, SYNTH_SEED = 24, 64, 3


@pytest.fixture(scope="session")
def synth_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Root of a small synthetic NUAA-SIRST set (24 images, 64 px, idx_427 19/5). Read-only."""
    from gglops.data.synth import synthesize

    return synthesize(
        tmp_path_factory.mktemp("data") / "synthetic-sirst", SYNTH_N, SYNTH_SIZE, SYNTH_SEED
    )
