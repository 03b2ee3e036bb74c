"""Options shared by several commands, and small helpers for printing results."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from gglops.core import files

ParamsOpt = Annotated[Path, typer.Option("--params", help="params.yaml to read.")]
SetOpt = Annotated[
    list[str] | None,
    typer.Option("--set", help="Override a param: section.key=value (repeatable)."),
]
OutOpt = Annotated[Path | None, typer.Option("--out", help="Write the result as JSON here.")]
ModelArg = Annotated[
    str, typer.Argument(help="Checkpoint dir, models:/gglnet@alias, runs:/ID/model or .onnx file.")
]


def write_json(path: Path | None, payload: Any) -> None:
    """Write JSON atomically (temp file + rename) so a reader never sees half a file."""
    if path is None:
        return
    files.write_json(path, payload)
