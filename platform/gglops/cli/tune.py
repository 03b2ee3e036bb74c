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
        Path | None, typer.Option("--data", help="Dataset root (else data.root).")
    ] = None,
    samples: Annotated[int | None, typer.Option(min=1, help="Trials (else tune.samples).")] = None,
    resume: Annotated[bool, typer.Option(help="Continue an interrupted sweep.")] = False,
    best_out: Annotated[
        Path, typer.Option(help="Best params as YAML (consumed by the train stage).")
    ] = Path("params/best.yaml"),
    out: OutOpt = None,
) -> None:
    """Search hyperparameters with ASHA + Optuna; writes the best config."""
    from gglops.params import load_params
    from gglops.settings import load_settings

    loaded, settings = load_params(params, set_), load_settings()  # fail fast, before heavy imports
    from gglops.tune import TuneRequest, run_tuning

    request = TuneRequest(
        params=loaded,
        data_root=data,
        samples=samples,
        resume=resume,
        best_out=best_out,
    )
    result = run_tuning(request, settings)
    write_json(out, result.model_dump(mode="json"))


def register(app: typer.Typer) -> None:
    app.command("tune")(tune)
