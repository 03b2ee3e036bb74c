"""`gglops data fetch|synth|validate|manifest`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from gglops.cli.common import write_json

if TYPE_CHECKING:
    from rich.table import Table

    from gglops.core.params import CustomLayout
    from gglops.data.fetch import FetchResult
    from gglops.data.validate import ValidationReport

data_app = typer.Typer(
    help="Datasets: fetch, synthesise, validate, fingerprint.", no_args_is_help=True
)

LayoutOpt = Annotated[
    str | None,
    typer.Option(
        help="auto | nuaa-sirst | irstd-1k | dnanet | basicirstd | msda-net | custom "
        "(default: the --params file's data.layout, else auto)"
    ),
]
SplitOpt = Annotated[
    str | None, typer.Option(help="Split name where a layout has several (idx_427, 50_50, ...).")
]


def _fetch_line(result: FetchResult) -> str:
    import shlex

    from rich.filesize import decimal

    amount = f"{result.files} files, {decimal(result.bytes)}"
    pin = f"{result.name}@{result.commit[:7]}"
    if result.already:
        done = f"{result.out}: already fetched, verified ({pin}, {amount})"
    else:
        done = f"fetched {pin} into {result.out} ({amount}, sha256-verified) from {result.source}"
    return f"{done}; next: gglops data validate {shlex.quote(str(result.out))}"


@data_app.command("fetch")
def fetch(
    name: Annotated[str, typer.Argument(help="Dataset: nuaa-sirst.")],
    out: Annotated[Path, typer.Argument(help="Folder to create (absent or empty).")],
    source: Annotated[
        str | None,
        typer.Option(
            help="A local copy (folder) or an http(s):// or file:// URL base to read instead "
            "of the public repository at the pinned commit."
        ),
    ] = None,
) -> None:
    """Fetch a public dataset at its pinned commit: every file checked against the committed
    sha256 list; OUT appears whole or not at all (an OUT already holding it is a no-op)."""
    from gglops.cli.render import count_bar, errors
    from gglops.data.fetch import fetch_dataset

    with count_bar(errors(), f"fetching {name}") as count:
        tick = None if count is None else (lambda done, total, _path: count(done, total))
        result = fetch_dataset(name, out, source or None, progress=tick)
    typer.echo(_fetch_line(result))


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


ParamsOpt = Annotated[
    Path | None,
    typer.Option(
        "--params",
        help="A params file whose data section (layout, split, custom) names the dataset; "
        "--layout/--split given here win.",
    ),
]


def _dataset(
    params_file: Path | None, layout: str | None, split: str | None
) -> tuple[str, str | None, CustomLayout | None]:
    """(layout, split, custom) from the flags, else from a params file's data section."""
    if params_file is None:
        return layout or "auto", split, None
    from gglops.core.params import resolve

    data = resolve(params_file).data
    return layout or data.layout, split if split is not None else data.split, data.custom


@data_app.command("validate")
def validate(
    root: Path,
    layout: LayoutOpt = None,
    split: SplitOpt = None,
    params_file: ParamsOpt = None,
) -> int:
    """Check every image, mask and split entry; exit 2 with one line per problem (an
    ambiguous mask too). Clean: target counts per split, a warning for a split without any."""
    from gglops.cli.render import count_bar, errors
    from gglops.data.validate import validate_dataset

    layout, split, custom = _dataset(params_file, layout, split)
    with count_bar(errors(), f"validating {root}") as count:
        report = validate_dataset(root, layout, split, custom, progress=count)
    return _show_validation(root, report)


def _show_validation(root: Path, report: ValidationReport) -> int:
    """Problems: one line each and a count on stderr, exit 2. Clean: the summary table on
    stdout, then a warning line on stderr per split without a target, exit 0."""
    if not report.ok:
        for problem in report.problems:
            typer.echo(problem.line(), err=True)
        typer.echo(f"{len(report.problems)} problem(s) in {root}", err=True)
        return 2
    from rich.console import Console

    Console(soft_wrap=True).print(_summary_table(report))
    for warning in report.warnings:  # only here: with problems, unread masks would count as empty
        typer.echo(f"warning: {warning.line()}", err=True)
    return 0


def _summary_table(report: ValidationReport) -> Table:
    """One column per split, one row per figure."""
    from rich.table import Table

    from gglops.data.validate import summary_rows

    split = f", split {report.split}" if report.split else ""
    table = Table(title=f"{report.root} ({report.layout}{split})")
    for column in ("", *report.stats):
        table.add_column(column)
    for label, cells in summary_rows(report):
        table.add_row(label, *cells)
    return table


@data_app.command("manifest")
def manifest(
    root: Path,
    out: Annotated[Path, typer.Option("--out", help="Manifest JSON to write.")],
    layout: LayoutOpt = None,
    split: SplitOpt = None,
    params_file: ParamsOpt = None,
) -> None:
    """Per-file sha256 and split checksums: the data's identity."""
    from gglops.cli.render import count_bar, errors
    from gglops.data.manifest import build_manifest

    layout, split, custom = _dataset(params_file, layout, split)
    with count_bar(errors(), f"hashing {root}") as count:
        found = build_manifest(root, layout=layout, split=split, custom=custom, progress=count)
    write_json(out, found.model_dump(mode="json"))
    counts = ", ".join(f"{name} {n}" for name, n in found.counts.items())
    typer.echo(
        f"{out}: {len(found.files)} files ({counts}), data_hash {found.data_hash[:12]}…", err=True
    )


def register(app: typer.Typer) -> None:
    app.add_typer(data_app, name="data")
