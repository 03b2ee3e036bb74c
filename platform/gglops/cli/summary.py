"""`gglops summary`: the champion, its metrics, the ONNX URI and the MLflow run URL."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from rich.console import Console

    from gglops.stages.summary import ChampionSummary


def summary() -> None:
    """Print the current champion of the registry (what `make demo` ends with)."""
    from rich.console import Console

    from gglops.core.settings import load_settings
    from gglops.stages.summary import champion_summary

    print_champion(Console(), champion_summary(load_settings()))


def print_champion(console: Console, summary: ChampionSummary) -> None:
    """Its metrics as a table, then one line each: gate verdict, ONNX, MLflow run, DVC."""
    from rich.table import Table

    from gglops.core.metrics import metric_text
    from gglops.stages.summary import METRIC_TAGS

    table = Table(title=f"{summary.model} {summary.alias}: version {summary.version}")
    table.add_column(f"metric ({summary.split} split, {summary.evaluated})")
    table.add_column("value", justify="right")
    for label, metric in METRIC_TAGS.items():
        if metric in summary.metrics:
            table.add_row(label, metric_text(metric, summary.metrics[metric]))
    console.print(table)
    # URLs stay on one line whatever the terminal width: a wrapped URL cannot be clicked.
    lines = {
        **(
            {"Not promoted": summary.gates or "not evaluated"}
            if summary.alias != "champion"
            else {}
        ),
        "ONNX artifact": summary.onnx_uri or "(not exported)",
        "MLflow run": summary.mlflow_url,
        "DVC": "dvc metrics show / dvc plots show / dvc params diff",
    }
    for label, text in lines.items():
        console.print(f"{label:<14}: {text}", soft_wrap=True, highlight=False)


def register(app: typer.Typer) -> None:
    app.command("summary")(summary)
