"""params.yaml `tune.space` → a Ray Tune search space, checked against the params it tunes.

Keys are dotted params paths (`train.lr`, `model.width_mult`); every key must name a real
param and every value the space can produce must validate as that param, so a typo or an
impossible range fails before Ray starts, naming `tune.space.<key>`.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from typing import Any

from ray import tune

from gglops.core.errors import UsageError
from gglops.core.params import Params, SearchDim

Sampler = Callable[[SearchDim], Any]

# SearchDim.kind → Tune sampler. randint's high is exclusive, as in Tune and numpy.
SAMPLERS: dict[str, Sampler] = {
    "loguniform": lambda d: tune.loguniform(*d.bounds),
    "uniform": lambda d: tune.uniform(*d.bounds),
    "choice": lambda d: tune.choice(list(d.values or [])),
    "randint": lambda d: tune.randint(*(int(b) for b in d.bounds)),
}

# Grid search enumerates; only discrete dimensions have a finite grid.
GRID_VALUES: dict[str, Callable[[SearchDim], list[Any]]] = {
    "choice": lambda d: list(d.values or []),
    "randint": lambda d: list(range(int(d.low or 0), int(d.high or 0))),
}

# Metrics the training loop reports each epoch, and which direction is better.
METRIC_MODES: dict[str, str] = {
    "val_miou": "max",
    "val_niou": "max",
    "val_pd": "max",
    "val_fa": "min",
    "train_loss": "min",
}

# Set by the sweep itself (tune.epochs, tune.workers_per_trial), not searchable.
RESERVED = ("train.epochs", "train.workers", "train.run_name")


def checked_space(params: Params) -> dict[str, SearchDim]:
    """`tune.space`, every key and bound checked; one UsageError line otherwise."""
    space = params.tune.space
    if not space:
        raise UsageError("tune.space is empty: add at least one dotted key (e.g. train.lr)")
    known = params.flat()
    for key, dim in space.items():
        where = f"tune.space.{key}"
        if key not in known or key.startswith("tune.") or key in RESERVED:
            raise UsageError(f"{where}: not a tunable param{_suggest(key, known)}")
        for value in _probe_values(dim):
            _check_value(params, where, key, value)
    return dict(space)


def metric_mode(params: Params) -> str:
    metric = params.tune.metric
    if metric not in METRIC_MODES:
        raise UsageError(f"tune.metric: {metric!r} is not one of {', '.join(METRIC_MODES)}")
    return METRIC_MODES[metric]


def param_space(space: dict[str, SearchDim], grid: bool) -> dict[str, Any]:
    """The Tuner's `param_space`; for grid search every dimension must be discrete."""
    if not grid:
        return {key: SAMPLERS[dim.kind](dim) for key, dim in space.items()}
    out = {}
    for key, dim in space.items():
        if dim.kind not in GRID_VALUES:
            raise UsageError(
                f"tune.space.{key}: search_alg 'grid' needs a 'choice' or 'randint' dimension"
            )
        out[key] = tune.grid_search(GRID_VALUES[dim.kind](dim))
    return out


def baseline_point(params: Params, space: dict[str, SearchDim]) -> dict[str, Any] | None:
    """params.yaml's own values as the first trial, when they lie inside the space."""
    flat = params.flat()
    point = {key: flat[key] for key in space}
    return point if all(_inside(dim, point[key]) for key, dim in space.items()) else None


def _suggest(key: str, known: dict[str, Any]) -> str:
    tunable = [k for k in known if not k.startswith("tune.") and k not in RESERVED]
    close = difflib.get_close_matches(key, tunable, n=1)
    return f" (did you mean {close[0]}?)" if close else " (keys look like train.lr)"


def _probe_values(dim: SearchDim) -> list[Any]:
    if dim.kind == "choice":
        return list(dim.values or [])
    low, high = dim.low, dim.high
    return [int(low), int(high) - 1] if dim.kind == "randint" else [low, high]  # type: ignore[arg-type]


def _check_value(params: Params, where: str, key: str, value: Any) -> None:
    try:
        params.with_overrides({key: value})
    except UsageError as exc:
        reason = str(exc).split(": ", 2)[-1]
        raise UsageError(f"{where}: value {value!r} is invalid for {key} ({reason})") from None


def _inside(dim: SearchDim, value: Any) -> bool:
    if dim.kind == "choice":
        return value in (dim.values or [])
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    low, high = float(dim.low or 0), float(dim.high or 0)
    return low <= value < high if dim.kind == "randint" else low <= value <= high
