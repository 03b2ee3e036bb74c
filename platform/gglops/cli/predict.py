"""`gglops predict`: a mask and an overlay (targets boxed) per image."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from gglops.cli.common import ModelArg


def predict(
    model: ModelArg,
    images: Annotated[list[Path], typer.Argument(help="Images to segment.")],
    out: Annotated[Path, typer.Option("--out", help="Folder for masks and overlays.")],
) -> None:
    """Write NAME_mask.png and NAME_overlay.png (targets boxed) into --out for each image.

    NAME is the image's stem. Images that share a stem (a/img.png b/img.png, x.png x.jpg) are
    numbered in the order given (img-1, img-2), so every image keeps its own result; each line
    printed names the files written. Nothing is written when --out is a file or an image is
    unreadable."""
    from gglops.cli.render import count_bar, errors
    from gglops.core.settings import load_settings
    from gglops.stages.predict import predict_images

    uri = load_settings().mlflow_tracking_uri
    with count_bar(errors(), f"predicting with {model}") as count:
        done = predict_images(model, images, out, uri, progress=count)
    for result in done:
        typer.echo(f"{result.image}: {result.targets} target(s) → {result.mask}, {result.overlay}")
    if renamed := [r for r in done if r.mask.name != f"{r.image.stem}_mask.png"]:
        typer.echo(f"note: {len(renamed)} images share a file stem with another one: their "
                   "results are numbered in the order given (see above)", err=True)  # fmt: skip


def register(app: typer.Typer) -> None:
    app.command("predict")(predict)
