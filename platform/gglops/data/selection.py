"""Which images train the model, which choose it, which test it: the model-selection protocol.

`val` (the default) trains on the train list and chooses the best epoch, early stopping and
the Tune objective on the validation list; where a split ships none (the synthetic demo data,
DNANet, IRSTD-1k), a fixed, seeded part of train is held out instead, the same for every
training seed. `test` is the literature's protocol: train on train + val and choose on the
test split, so that published numbers can be reproduced; its test metrics are then no longer
independent of the choice, and every record says so.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gglops.core.errors import DataError
from gglops.data.layouts import DatasetIndex, Sample


@dataclass(frozen=True)
class SelectionSplits:
    fit: list[Sample]  # trained on
    select: list[Sample]  # chooses the model
    test: list[Sample]  # scored, gates judge it
    protocol: str  # "val", "holdout" or "test"
    description: str  # one line for metrics.json, MLflow, versions and reports


def held_out(train: list[Sample], fraction: float, seed: int) -> tuple[list[Sample], list[Sample]]:
    """(kept, held out): round(fraction × n) samples drawn by `seed`, at least one each."""
    if len(train) < 2:
        raise DataError(
            f"train has {len(train)} image(s): too few to hold out a validation part "
            "(give a val list or set data.selection=test)"
        )
    count = min(len(train) - 1, max(1, round(fraction * len(train))))
    order = sorted(train, key=lambda s: s.stem)
    picked = set(np.random.default_rng(seed).permutation(len(order))[:count].tolist())
    kept = [s for i, s in enumerate(order) if i not in picked]
    return kept, [s for i, s in enumerate(order) if i in picked]


def selection_splits(
    index: DatasetIndex, selection: str, holdout: float = 0.1, holdout_seed: int = 0
) -> SelectionSplits:
    """The protocol `selection` ("val" or "test") applied to a dataset's published splits."""
    if selection == "test":
        return SelectionSplits(
            fit=index.train + index.val,
            select=index.test,
            test=index.test,
            protocol="test",
            description=f"test split ({len(index.test)} images), as the literature does",
        )
    if index.val:
        return SelectionSplits(
            fit=index.train,
            select=index.val,
            test=index.test,
            protocol="val",
            description=f"val split ({len(index.val)} images)",
        )
    kept, out = held_out(index.train, holdout, holdout_seed)
    return SelectionSplits(
        fit=kept,
        select=out,
        test=index.test,
        protocol="holdout",
        description=(
            f"{len(out)} images held out of train ({holdout:g}, seed {holdout_seed}): "
            "the split ships no val list"
        ),
    )
