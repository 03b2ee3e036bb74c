"""`gglops train`: a Ray Train run of GGL-Net, tracked in MLflow."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer

from gglops.cli.common import OutOpt, ParamsOpt, SetOpt, write_json


def train(
    params: ParamsOpt = Path("params.yaml"),
    set_: SetOpt = None,
    data: Annotated[
        Path | None, typer.Option("--data", help="Dataset root (sets data.root).")
    ] = None,
    workers: Annotated[
        int | None, typer.Option(min=1, help="Ray Train workers (sets train.workers).")
    ] = None,
    gpu: Annotated[
        bool | None, typer.Option("--gpu/--no-gpu", help="Train on GPUs (sets train.use_gpu).")
    ] = None,
    resume: Annotated[
        bool, typer.Option(help="Continue the newest checkpoint of train.run_name.")
    ] = False,
    best_params: Annotated[
        Path | None,
        typer.Option(help="Tuned params YAML (from gglops tune): over --params, under --set."),
    ] = None,
    model_dir: Annotated[
        Path | None, typer.Option(help="Copy the best checkpoint's model bundle here.")
    ] = None,
    history: Annotated[
        Path | None, typer.Option(help="Write the per-epoch metrics here as CSV.")
    ] = None,
    out: OutOpt = None,
) -> None:
    """Train GGL-Net on Ray Train; writes the run id, checkpoint and final metrics."""
    from gglops.core.params import resolve
    from gglops.core.settings import load_settings

    flags = {"data.root": data, "train.workers": workers, "train.use_gpu": gpu}
    final = resolve(params, best_params, set_, flags)  # fail fast, before heavy imports
    settings = load_settings()
    from gglops.stages.train import TrainRequest, run_training
    from gglops.stages.train.pipeline_files import copy_bundle, write_history

    echo = logging.getLogger("gglops").isEnabledFor(logging.INFO)  # off under --quiet
    result = run_training(TrainRequest(params=final, resume=resume, echo=echo), settings)
    if model_dir is not None:
        copy_bundle(result.checkpoint, model_dir, settings)
    if history is not None:
        write_history(result.history, history)
    write_json(out, result.model_dump(mode="json", exclude={"history"}))


def register(app: typer.Typer) -> None:
    app.command("train")(train)
