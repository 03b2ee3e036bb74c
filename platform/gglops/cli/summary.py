"""`gglops summary`: the champion, its metrics, the ONNX URI and the MLflow run URL."""

from __future__ import annotations

import typer


def summary() -> None:
    """Print the current champion of the registry (what `make demo` ends with)."""
    from gglops.core.settings import load_settings
    from gglops.stages.summary import champion_summary, print_champion

    print_champion(champion_summary(load_settings()))


def register(app: typer.Typer) -> None:
    app.command("summary")(summary)
