"""`gglops export`: a model to ONNX (local or s3://), its parity with torch checked."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from gglops.cli.common import ModelArg


def export(
    model: ModelArg,
    out: Annotated[str, typer.Option("--out", help="Local .onnx path or s3:// URI.")],
    data: Annotated[Path | None, typer.Option("--data", help="Data for the parity check.")] = None,
) -> None:
    """Export to ONNX (probabilities out, dynamic N/H/W) and check parity with torch."""
    from gglops.core.settings import load_settings
    from gglops.stages.release import export_to

    artifact = export_to(model, out, load_settings(), data_root=data)
    parity = artifact.parity
    typer.echo(
        f"{artifact.path}: opset {artifact.opset}, sha256 {artifact.sha256}, parity max abs "
        f"diff {parity.max_abs_diff:.2e} on {parity.n_inputs} {parity.source}"
    )


def register(app: typer.Typer) -> None:
    app.command("export")(export)
