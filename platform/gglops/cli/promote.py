"""`gglops promote` and `gglops rollback`: the registry's aliases, moved through the gates."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from gglops.cli.common import ParamsOpt, SetOpt, write_json

if TYPE_CHECKING:
    from rich.console import Console

    from gglops.stages.promote import PromotionDecision, RollbackResult


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
    from gglops.cli.render import phases
    from gglops.core.params import resolve
    from gglops.core.settings import load_settings
    from gglops.stages.promote import promote_version

    settings, resolved = load_settings(), resolve(params, sets=set_)
    with phases(_stderr(), "promote") as phase:
        decision = promote_version(version, settings, resolved, data_root=data, phase=phase)
    print_decision(_stderr(), decision)
    write_json(out, decision.model_dump(mode="json"))
    if record is not None:
        write_json(record, decision.dvc_metrics())
        return 0
    return 0 if decision.passed else 1


def rollback() -> None:
    """Move `champion` back to `previous`."""
    from gglops.core.settings import load_settings
    from gglops.stages.promote import rollback_champion

    print_rollback(_stderr(), rollback_champion(load_settings()))


def _stderr() -> Console:
    """The decision goes to stderr: stdout stays free for what a pipeline reads."""
    from rich.console import Console

    return Console(stderr=True)


def print_decision(console: Console, decision: PromotionDecision) -> None:
    """Candidate vs champion, metric by metric, then every gate and the verdict."""
    from rich.table import Table

    from gglops.adapters.registry import METRICS
    from gglops.core.metrics import metric_text

    cand, champ = decision.candidate_metrics, decision.champion_metrics
    table = Table(title=f"promotion of version {decision.version}")
    table.add_column("metric")
    table.add_column(f"candidate v{decision.version}", justify="right")
    table.add_column(f"champion v{decision.champion_version or '-'}", justify="right")
    for metric in METRICS:
        theirs = "-" if champ is None else metric_text(metric, getattr(champ, metric))
        table.add_row(metric, metric_text(metric, getattr(cand, metric)), theirs)
    console.print(table)
    for check in decision.checks:
        mark = "[green]pass[/]" if check.passed else "[red]FAIL[/]"
        console.print(f"  {mark} {check.name}: {check.detail}")
    verdict = "[green]promoted[/]" if decision.passed else "[red]not promoted[/]"
    console.print(f"version {decision.version}: {verdict}")
    if decision.onnx_uri:
        console.print(f"  ONNX {decision.onnx_uri} sha256 {decision.onnx_sha256}")


def print_rollback(console: Console, result: RollbackResult) -> None:
    console.print(f"champion: version {result.demoted} → version {result.champion}")
    if result.warning:
        console.print(f"[bold yellow]warning:[/] {result.warning}")


def register(app: typer.Typer) -> None:
    app.command("promote")(promote)
    app.command("rollback")(rollback)
