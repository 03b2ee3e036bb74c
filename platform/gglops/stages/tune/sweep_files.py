"""What a sweep leaves behind: params/best.yaml, the trials table, DVC plot data."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import yaml

from gglops.core.files import atomic_path, atomic_write
from gglops.stages.tune.result import TrialSummary

STATUS_COLOR = {
    "completed": "tab:green",
    "stopped": "tab:orange",
    "error": "tab:red",
    "unfinished": "tab:gray",
}


def best_yaml(best_params: dict[str, Any]) -> str:
    """Flat dotted keys, sorted: the same result gives the same bytes (DVC sees no change)."""
    return yaml.safe_dump(
        dict(sorted(best_params.items())), sort_keys=True, default_flow_style=False
    )


def trials_csv(trials: list[TrialSummary], metric: str) -> str:
    keys = sorted({k for t in trials for k in t.params})
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["trial", metric, "epochs", "status", "duration_s", *keys])
    for t in trials:
        score = t.best.get(metric)
        writer.writerow(
            [
                t.index,
                "" if score is None else f"{score:.6g}",
                t.epochs,
                t.status,
                f"{t.duration_s:.1f}",
                *(t.params.get(k, "") for k in keys),
            ]
        )
    return out.getvalue()


def write_trial_plots(directory: Path, trials: list[TrialSummary], metric: str) -> None:
    """`tune_trials.csv` (DVC plot data) and `tune_trials.png` (curves and best per trial)."""
    atomic_write(directory / "tune_trials.csv", trials_csv(trials, metric))
    import matplotlib

    matplotlib.use("Agg")  # no display on servers and CI
    import matplotlib.pyplot as plt

    fig, (curves, bests) = plt.subplots(1, 2, figsize=(10, 4))
    for t in trials:
        curves.plot(range(1, len(t.history) + 1), t.history, marker="o", label=f"trial {t.index}")
    curves.set(xlabel="epoch", ylabel=metric, title=f"{metric} per epoch (ASHA stops early)")
    curves.legend(fontsize="small")
    scored = [t for t in trials if metric in t.best]
    bests.bar(
        [str(t.index) for t in scored],
        [t.best[metric] for t in scored],
        color=[STATUS_COLOR[t.status] for t in scored],
    )
    bests.set(xlabel="trial", ylabel=f"best {metric}", title="best per trial (colour = status)")
    fig.tight_layout()
    with atomic_path(directory / "tune_trials.png") as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
