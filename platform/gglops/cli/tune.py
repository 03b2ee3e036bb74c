"""`gglops tune`: a Ray Tune sweep whose trials are Ray Train runs."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from gglops.cli.common import OutOpt, ParamsOpt, SetOpt, write_json
from gglops.cli.render import result_block, trials_table

if TYPE_CHECKING:
    from rich.console import Console

    from gglops.stages.tune import TuneRequest, TuneResult


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
    from gglops.cli.render import TuneProgress, console
    from gglops.stages.tune import TuneRequest, run_tuning

    request = TuneRequest(
        params=final,
        resume=resume,
        sweep=sweep,
        best_out=best_out,
        plots=plots,
    )
    out_console = console()
    with TuneProgress(out_console, final.tune.metric) as progress:
        result = run_tuning(request, settings, on_trial=progress)
    write_json(out, result.model_dump(mode="json"))
    _render(out_console, result, request)


def _render(out_console: Console, result: TuneResult, request: TuneRequest) -> None:
    best = next(t for t in result.trials if t.trial_id == result.best_trial_id)
    out_console.print(trials_table(result.trials, result.metric, best.trial_id))
    busy = sum(t.duration_s for t in result.trials)
    rows = [
        ("sweep", result.sweep),
        ("parent run", result.parent_run_id),
        ("best", f"trial {best.index}: {result.metric} {result.best_metrics[result.metric]:.4f}"),
        ("params", str(result.best_params)),
        ("best params", str(request.best_out)),
        ("plots", str(request.plots or "")),
        ("wall", f"{result.wall_s:.0f} s for {busy:.0f} s of trials"),
    ]
    next_step = f"gglops train --best-params {request.best_out}"
    result_block(out_console, "tuned", rows, next_step)


def register(app: typer.Typer) -> None:
    app.command("tune")(tune)
