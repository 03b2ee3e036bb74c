"""`gglops report`: the reproducibility report of a registered version (Markdown and HTML)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def report(
    version: Annotated[
        str,
        typer.Argument(
            help="Version number, alias (candidate, champion, previous) or models:/gglnet@alias."
        ),
    ],
    out: Annotated[Path, typer.Option("--out", help="Folder for the report.")],
) -> None:
    """Reproducibility report of a registered version; prints its metrics table and where it
    wrote report.md and report.html."""
    from gglops.core.settings import load_settings
    from gglops.stages.report import write_report

    written = write_report(version, out, load_settings())
    typer.echo(f"{written.summary}\nwrote {written.markdown} and {written.html}")


def register(app: typer.Typer) -> None:
    app.command("report")(report)
