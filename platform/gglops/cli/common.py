"""Options shared by several commands, and small helpers for printing results."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

ParamsOpt = Annotated[Path, typer.Option("--params", help="params.yaml to read.")]
SetOpt = Annotated[
    list[str] | None,
    typer.Option("--set", help="Override a param: section.key=value (repeatable)."),
]
OutOpt = Annotated[Path | None, typer.Option("--out", help="Write the result as JSON here.")]


def write_json(path: Path | None, payload: Any) -> None:
    """Write JSON atomically (temp file + rename) so a reader never sees half a file."""
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n")
    tmp.replace(path)
