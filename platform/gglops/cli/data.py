"""`gglops data synth|validate|manifest`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from gglops.cli.common import write_json

data_app = typer.Typer(help="Datasets: synthesise, validate, fingerprint.", no_args_is_help=True)

LayoutOpt = Annotated[
    str,
    typer.Option(help="auto | nuaa-sirst | irstd-1k | dnanet | basicirstd | msda-net"),
]
SplitOpt = Annotated[
    str | None, typer.Option(help="Split name where a layout has several (idx_427, 50_50, ...).")
]


@data_app.command("synth")
def synth(
    out: Path,
    n: Annotated[int, typer.Option(min=2, help="Number of images.")] = 64,
    size: Annotated[int, typer.Option(min=16, help="Image side in pixels.")] = 128,
    seed: Annotated[int, typer.Option(help="Seed: same arguments give identical files.")] = 0,
    layout: Annotated[str, typer.Option(help="Folder convention to write.")] = "nuaa-sirst",
) -> None:
    """Write a synthetic SIRST dataset in a real folder layout."""
    from gglops.data.synth import synthesize

    synthesize(out, n=n, size=size, seed=seed, layout=layout)


@data_app.command("validate")
def validate(root: Path, layout: LayoutOpt = "auto", split: SplitOpt = None) -> int:
    """Check every image, mask and split entry; exit 2 with one line per problem (an
    ambiguous mask too). Clean: target counts per split, a warning for a split without any."""
    from gglops.data.validate import run_validate

    return run_validate(root, layout=layout, split=split)


@data_app.command("manifest")
def manifest(
    root: Path,
    out: Annotated[Path, typer.Option("--out", help="Manifest JSON to write.")],
    layout: LayoutOpt = "auto",
    split: SplitOpt = None,
) -> None:
    """Per-file sha256 and split checksums: the data's identity."""
    from gglops.data.manifest import build_manifest

    write_json(out, build_manifest(root, layout=layout, split=split).model_dump(mode="json"))


def register(app: typer.Typer) -> None:
    app.add_typer(data_app, name="data")
