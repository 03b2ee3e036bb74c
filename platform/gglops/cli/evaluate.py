"""`gglops evaluate`: a model's metrics on a test split, as metrics.json (and DVC plot data)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from gglops.cli.common import ModelArg, ParamsOpt, SetOpt, write_json


def evaluate(
    model: ModelArg,
    data: Annotated[Path, typer.Argument(help="Dataset root.")],
    out: Annotated[Path, typer.Option("--out", help="metrics.json to write.")] = Path(
        "metrics.json"
    ),
    plots: Annotated[Path | None, typer.Option(help="Folder for DVC plot data.")] = None,
    params: ParamsOpt = Path("params.yaml"),
    set_: SetOpt = None,
) -> None:
    """Evaluate a model on the test split under data.eval_protocol (default: original size)."""
    from gglops.cli.render import count_bar, errors
    from gglops.core.params import resolve
    from gglops.core.settings import load_settings
    from gglops.stages.evaluate import evaluate_model

    uri, resolved = load_settings().mlflow_tracking_uri, resolve(params, sets=set_)
    with count_bar(errors(), f"evaluating {model}") as count:
        result = evaluate_model(model, data, resolved, plots, tracking_uri=uri, progress=count)
    write_json(out, result.model_dump(mode="json"))
    typer.echo(
        f"{out}: mIoU {result.miou:.4f}  nIoU {result.niou:.4f}  Pd {result.pd:.4f}  "
        f"Fa {result.fa_per_million:.1f}e-6 on {result.n_images} test images "
        f"({result.resolution})",
        err=True,
    )


def register(app: typer.Typer) -> None:
    app.command("evaluate")(evaluate)
