"""`gglops register`: a training run's model as a new registry version, alias `candidate`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from gglops.cli.common import OutOpt, write_json


def register_cmd(
    run_id: Annotated[str | None, typer.Argument(help="MLflow run id.")] = None,
    from_result: Annotated[
        Path | None, typer.Option("--from-result", help="Take the run id from train's --out.")
    ] = None,
    metrics: Annotated[Path | None, typer.Option(help="Test metrics JSON to tag.")] = None,
    out: OutOpt = None,
) -> None:
    """Register the run's model as a new version of gglnet with alias `candidate`."""
    from gglops.adapters.registry import register_run, run_id_from_result
    from gglops.core.errors import UsageError
    from gglops.core.settings import load_settings

    if (run_id is None) == (from_result is None):
        raise UsageError("give exactly one of RUN_ID or --from-result FILE")
    chosen = run_id_from_result(from_result) if from_result is not None else str(run_id)
    result = register_run(chosen, load_settings(), metrics_file=metrics)
    typer.echo(f"registered {result.name} version {result.version} (alias candidate)")
    write_json(out, result.model_dump(mode="json"))


def register(app: typer.Typer) -> None:
    app.command("register")(register_cmd)
