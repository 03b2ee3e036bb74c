"""`gglops train`: a Ray Train run of GGL-Net, tracked in MLflow."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from gglops.cli.common import OutOpt, ParamsOpt, SetOpt, write_json

if TYPE_CHECKING:
    from rich.console import Console

    from gglops.stages.train import TrainResult


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
    from gglops.cli.render import TrainProgress, console, history_table
    from gglops.stages.train import TrainRequest, run_training
    from gglops.stages.train.pipeline_files import copy_bundle, write_history

    out_console = console()
    echo = logging.getLogger("gglops").isEnabledFor(logging.INFO)  # off under --quiet
    request = TrainRequest(params=final, resume=resume, echo=echo)
    with TrainProgress(out_console) as progress:
        result = run_training(request, settings, on_progress=progress if echo else None)
    if model_dir is not None:
        copy_bundle(result.checkpoint, model_dir, settings)
    if history is not None:
        write_history(result.history, history)
    write_json(out, result.model_dump(mode="json", exclude={"history"}))
    if echo:
        size = final.data.eval_size
        evaluated = f"resized to {size}x{size}" if size else "original size"
        out_console.print(
            history_table(result.history, result.best_epoch, result.model_selection, evaluated)
        )
    _result_block(out_console, result, [model_dir, history, out])


def _result_block(out_console: Console, result: TrainResult, written: list[Path | None]) -> None:
    from gglops.cli.render import result_block

    best = result.metrics
    rows = [
        ("run", f"{result.run_name} ({result.run_id})"),
        ("MLflow", result.run_url or f"runs:/{result.run_id}"),
        ("model", f"runs:/{result.run_id}/model (epoch {result.best_epoch + 1})"),
        ("checkpoint", result.checkpoint),
        ("best", f"mIoU {best['miou']:.4f}  Pd {best['pd']:.3f}  ({result.model_selection})"),
        ("files", ", ".join(str(path) for path in written if path is not None)),
    ]
    result_block(out_console, "trained", rows, f"gglops register {result.run_id}")


def register(app: typer.Typer) -> None:
    app.command("train")(train)
