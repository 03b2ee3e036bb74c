"""`gglops tune`: a Ray Tune sweep whose trials are Ray Train runs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from gglops.cli.common import OutOpt, ParamsOpt, SetOpt, write_json


def tune(
    params: ParamsOpt = Path("params.yaml"),
    set_: SetOpt = None,
    data: Annotated[
        Path | None, typer.Option("--data", help="Dataset root (sets data.root).")
    ] = None,
    samples: Annotated[int | None, typer.Option(min=1, help="Trials (sets tune.samples).")] = None,
    resume: Annotated[
        bool, typer.Option(help="Continue an interrupted sweep (the newest, or --sweep).")
    ] = False,
    sweep: Annotated[
        str | None,
        typer.Option(help="Sweep name under GGLOPS_STORAGE_PATH (default: a new one)."),
    ] = None,
    best_out: Annotated[
        Path, typer.Option(help="Best params as YAML (consumed by the train stage).")
    ] = Path("params/best.yaml"),
    plots: Annotated[
        Path | None, typer.Option(help="Write tune_trials.csv and tune_trials.png here.")
    ] = None,
    out: OutOpt = None,
) -> None:
    """Search hyperparameters with ASHA + Optuna; writes the best config."""
    from gglops.core.params import resolve
    from gglops.core.settings import load_settings

    final = resolve(params, None, set_, {"data.root": data, "tune.samples": samples})
    settings = load_settings()  # both fail fast, before heavy imports
    from gglops.stages.tune.space import checked_space, metric_mode

    checked_space(final)  # a typo in tune.space fails here, before Ray and MLflow start
    metric_mode(final)
    from gglops.stages.tune import TuneRequest, run_tuning

    request = TuneRequest(
        params=final,
        resume=resume,
        sweep=sweep,
        best_out=best_out,
        plots=plots,
    )
    result = run_tuning(request, settings)
    write_json(out, result.model_dump(mode="json"))


def register(app: typer.Typer) -> None:
    app.command("tune")(tune)
