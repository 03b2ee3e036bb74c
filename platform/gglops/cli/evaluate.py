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
    from gglops.core.params import resolve
    from gglops.core.settings import load_settings
    from gglops.stages.evaluate import evaluate_model

    uri = load_settings().mlflow_tracking_uri
    result = evaluate_model(model, data, resolve(params, sets=set_), plots, tracking_uri=uri)
    write_json(out, result.model_dump(mode="json"))


def register(app: typer.Typer) -> None:
    app.command("evaluate")(evaluate)
