"""Model lifecycle: evaluate, register, promote, rollback, export, predict, report."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from gglops.cli.common import OutOpt, ParamsOpt, SetOpt, write_json

ModelArg = Annotated[
    str, typer.Argument(help="Checkpoint dir, models:/gglnet@alias, runs:/ID/model or .onnx file.")
]


def evaluate(
    model: ModelArg,
    data: Annotated[Path, typer.Argument(help="Dataset root.")],
    out: Annotated[Path, typer.Option("--out", help="metrics.json to write.")] = Path(
        "metrics.json"
    ),
    plots: Annotated[Path | None, typer.Option(help="Folder for DVC plot data.")] = None,
    params: ParamsOpt = Path("params.yaml"),
    set_: SetOpt = None,
) -> None:
    """Evaluate a model on the test split under data.eval_protocol (default: original size)."""
    from gglops.core.params import resolve
    from gglops.core.settings import load_settings
    from gglops.stages.evaluate import evaluate_model

    uri = load_settings().mlflow_tracking_uri
    result = evaluate_model(model, data, resolve(params, sets=set_), plots, tracking_uri=uri)
    write_json(out, result.model_dump(mode="json"))


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


def promote(
    version: Annotated[
        str | None, typer.Option(help="Version to promote (else candidate).")
    ] = None,
    data: Annotated[Path | None, typer.Option("--data", help="Test data root.")] = None,
    params: ParamsOpt = Path("params.yaml"),
    set_: SetOpt = None,
    out: Annotated[Path | None, typer.Option("--out", help="Decision JSON.")] = None,
    record: Annotated[
        Path | None,
        typer.Option(
            "--record",
            help="Pipeline mode (dvc.yaml): write the decision as DVC metrics here and exit 0 "
            "when a gate says no.",
        ),
    ] = None,
) -> int:
    """Gate the candidate against floors and the champion; on pass export ONNX and move aliases.

    Exit 1 when a gate says no, unless --record: a pipeline records the decision (a metric
    that `dvc exp show` lists) instead of failing its stage."""
    from gglops.core.params import resolve
    from gglops.core.settings import load_settings
    from gglops.stages.promote import promote_version

    decision = promote_version(version, load_settings(), resolve(params, sets=set_), data_root=data)
    write_json(out, decision.model_dump(mode="json"))
    if record is not None:
        write_json(record, decision.dvc_metrics())
        return 0
    return 0 if decision.passed else 1


def rollback() -> None:
    """Move `champion` back to `previous`."""
    from gglops.core.settings import load_settings
    from gglops.stages.promote import rollback_champion

    rollback_champion(load_settings())


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
    from gglops.core.settings import load_settings
    from gglops.stages.predict import predict_images

    done = predict_images(model, images, out, load_settings().mlflow_tracking_uri)
    for result in done:
        typer.echo(f"{result.image}: {result.targets} target(s) → {result.mask}, {result.overlay}")
    if renamed := [r for r in done if r.mask.name != f"{r.image.stem}_mask.png"]:
        typer.echo(f"note: {len(renamed)} images share a file stem with another one: their "
                   "results are numbered in the order given (see above)", err=True)  # fmt: skip


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
    app.command("evaluate")(evaluate)
    app.command("register")(register_cmd)
    app.command("promote")(promote)
    app.command("rollback")(rollback)
    app.command("export")(export)
    app.command("predict")(predict)
    app.command("report")(report)
