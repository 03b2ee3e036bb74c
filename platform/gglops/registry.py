"""MLflow registry lifecycle of `gglnet`: register, promote through gates, release, roll back.

Aliases (MLflow 3, no stages): `candidate` (newest registered), `champion` (serving),
`previous` (the champion before the last promotion).

Promotion order, so that a failure at any step leaves nothing half-done:
1. take the promotion lease (an S3 object created with If-None-Match, see `storage.lease`),
   so two promotions cannot interleave their alias moves;
2. evaluate candidate and champion on the same test split (the data recorded on the
   candidate, or `--data` if its manifest hash matches) under the candidate's recorded
   evaluation protocol (`data.eval_protocol`), and apply the gates;
3. on pass: export ONNX, check parity, upload model.onnx then manifest.json, log the file
   on the version's run, tag the version; only THEN move the aliases.

Rollback moves `champion` back to `previous` and clears `previous`: a second rollback is
refused instead of silently re-promoting the version that was just demoted (re-promote it
with `gglops promote --version N`, which runs the gates again).
"""

from __future__ import annotations

import json
import os
import re
import socket
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict
from rich.console import Console
from rich.table import Table

from gglops import tracking
from gglops.errors import UsageError
from gglops.evaluate import EvalResult
from gglops.export import OnnxArtifact
from gglops.gates import GateCheck, Scores, check_gates, failures
from gglops.params import GateParams, Params
from gglops.settings import Settings
from gglops.storage import ArtifactStore, LeaseBusyError, lease, publish

CANDIDATE, CHAMPION, PREVIOUS = "candidate", "champion", "previous"
LINEAGE_TAGS = tracking.LINEAGE_TAGS
EVAL_ARTIFACTS = "evaluation"  # run artifact folder: metrics.json and the plots beside it
RECIPE_PARAMS = ("train.epochs", "train.lr", "train.batch_size", "train.loss", "model.width_mult")
GATES_HEADING = "**Gates**"
# Run params copied onto the version: how to rebuild and evaluate its test split.
DATA_PARAMS = {
    "data_layout": "data.layout",
    "data_split": "data.split",
    "data_eval_protocol": "data.eval_protocol",
    "data_image_size": "data.image_size",
}
METRICS = ("miou", "niou", "pd", "fa")
LEASE_KEY = "locks/{model}/promotion.json"
LEASE_TTL_S = 30 * 60  # longer than a promotion takes; a crashed one blocks at most this
RELEASE_PREFIX = "models/{model}/{version}"
LOCK_BUSY = "another promotion is in progress"
RELEASE_FILES = ("model.onnx", "manifest.json")
MODEL_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:@(?P<alias>[^/@]+)|/(?P<version>\d+))$")
SHOWN = {"miou": (1.0, ""), "niou": (1.0, ""), "pd": (1.0, ""), "fa": (1e6, "e-6")}  # scale, unit


class RegisterResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    version: str
    run_id: str
    tags: dict[str, str]


class SplitData(BaseModel):
    """Where a version's test split lives and what it must hash to."""

    model_config = ConfigDict(frozen=True)

    root: Path
    layout: str
    split: str | None
    data_hash: str | None
    eval_size: int | None = None  # side of the recorded `resized` protocol; None = original


class ReleaseManifest(BaseModel):
    """manifest.json beside model.onnx: identity, interface, metrics, lineage."""

    model_config = ConfigDict(frozen=True)

    name: str
    version: str
    run_id: str
    sha256: str
    size: int
    opset: int
    exporter: str
    inputs: dict[str, list[str | int]]
    outputs: dict[str, list[str | int]]
    parity_max_abs_diff: float
    metrics: dict[str, float]
    lineage: dict[str, str]
    created_at: str


class Release(BaseModel):
    model_config = ConfigDict(frozen=True)

    version: str
    onnx_uri: str
    manifest_uri: str
    sha256: str
    uploaded: bool


class PromotionDecision(BaseModel):
    model_config = ConfigDict(frozen=True)

    passed: bool
    version: str
    champion_version: str | None
    reasons: list[str]
    checks: list[GateCheck]
    candidate_metrics: Scores
    champion_metrics: Scores | None
    data_root: str
    data_hash: str
    onnx_uri: str | None = None
    onnx_sha256: str | None = None


class RollbackResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    champion: str
    demoted: str | None
    artifact_ok: bool
    warning: str | None = None


# --- MLflow access ----------------------------------------------------------------------


@dataclass(frozen=True)
class ModelRegistry:
    """The registered model on one tracking server."""

    client: Any
    name: str
    uri: str

    @classmethod
    def open(cls, settings: Settings) -> ModelRegistry:
        uri = settings.mlflow_tracking_uri
        tracking.probe_tracking_server(uri)
        return cls(client=tracking.client(uri), name=settings.registered_model, uri=uri)

    def alias(self, alias: str) -> str | None:
        return alias_version(self.client, self.name, alias)

    def version(self, version: str) -> Any:
        return _version(self.client, self.name, version)

    def download(self, version: str, dst: Path) -> Path:
        return tracking.download_model_bundle(f"models:/{self.name}/{version}", self.uri, dst)


def alias_version(client: Any, name: str, alias: str) -> str | None:
    from mlflow.exceptions import MlflowException

    try:
        return str(client.get_model_version_by_alias(name, alias).version)
    except MlflowException:
        return None


def resolve_version(reg: ModelRegistry, ref: str) -> tuple[ModelRegistry, str]:
    """A version number, an alias (candidate, champion, previous) or `models:/NAME@ALIAS` /
    `models:/NAME/N` → (the registry of that model, the version number)."""
    target = ref
    if ref.startswith("models:/"):
        match = MODEL_URI.match(ref)
        if match is None:
            raise UsageError(f"{ref}: expected models:/NAME@ALIAS or models:/NAME/VERSION")
        reg, target = replace(reg, name=match["name"]), match["alias"] or match["version"]
    if target.isdigit():
        reg.version(target)  # one line when there is no such version
        return reg, target
    version = reg.alias(target)
    if version is None:
        raise UsageError(f"model {reg.name} has no alias {target!r} (nor is it a version number)")
    return reg, version


def _version(client: Any, name: str, version: str) -> Any:
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version(name, version)
    except MlflowException:
        raise UsageError(f"model {name} has no version {version}") from None


# --- register ---------------------------------------------------------------------------


def run_id_from_result(path: Path) -> str:
    """The run id in a `gglops train --out` JSON file."""
    try:
        return str(json.loads(Path(path).read_text())["run_id"])
    except (OSError, ValueError, KeyError) as exc:
        raise UsageError(f"{path}: not a train result with a run_id ({exc})") from None


def _metrics_from_file(path: Path) -> dict[str, float]:
    try:
        raw = json.loads(Path(path).read_text())
        return {m: float(raw[m]) for m in METRICS}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise UsageError(f"{path}: not a metrics file with {', '.join(METRICS)} ({exc})") from None


def _metrics_from_run(run: Any) -> dict[str, float]:
    """test_* metrics of the run, else its final val_* ones."""
    found = run.data.metrics
    out = {}
    for m in METRICS:
        value = found.get(f"test_{m}", found.get(f"val_{m}"))
        if value is not None:
            out[m] = float(value)
    return out


def _version_tags(run: Any, metrics: dict[str, float]) -> dict[str, str]:
    tags = {k: run.data.tags[k] for k in LINEAGE_TAGS if k in run.data.tags}
    for tag, param in DATA_PARAMS.items():
        value = run.data.params.get(param)
        if value is not None and value != "None":
            tags[tag] = value
    tags["run_id"] = run.info.run_id
    tags |= {f"test_{m}": f"{v:.6g}" for m, v in metrics.items()}
    return tags


def register_run(
    run_id: str, settings: Settings, metrics_file: Path | None = None
) -> RegisterResult:
    """Register `runs:/RUN_ID/model` as a new version of the model, tagged, described, alias
    candidate. With `metrics_file` (the evaluate stage's metrics.json) its test metrics go on
    the run and its logged model, and the file and the plots beside it on the run."""
    from mlflow.exceptions import MlflowException

    reg = ModelRegistry.open(settings)
    try:
        run = reg.client.get_run(run_id)
    except MlflowException:
        raise UsageError(f"run {run_id} not found on {reg.uri}") from None
    metrics = _metrics_from_file(metrics_file) if metrics_file else _metrics_from_run(run)
    tags = _version_tags(run, metrics)
    if metrics_file:
        _log_evaluation(reg.uri, run_id, metrics, metrics_file)
    try:
        version = tracking.register_model(reg.uri, run_id, reg.name, tags, _description(run, tags))
    except MlflowException as exc:
        raise UsageError(f"run {run_id}: cannot register its model ({exc.message})") from None
    reg.client.set_registered_model_alias(reg.name, CANDIDATE, version)
    return RegisterResult(name=reg.name, version=version, run_id=run_id, tags=tags)


def _log_evaluation(uri: str, run_id: str, metrics: dict[str, float], metrics_file: Path) -> None:
    """test_* metrics on the run and its model; metrics.json and plots/ as run artifacts."""
    test = {f"test_{m}": v for m, v in metrics.items()}
    tracking.log_metrics(uri, run_id, test, model_id=tracking.run_model_id(uri, run_id))
    plots = Path(metrics_file).parent / "plots"
    tracking.log_artifacts(uri, run_id, [Path(metrics_file), plots], EVAL_ARTIFACTS)


def _description(run: Any, tags: dict[str, str]) -> str:
    """The version's description (Markdown): its data, its recipe, its test metrics."""
    params = run.data.params
    split = f"layout {tags.get('data_layout', 'auto')}, split {tags.get('data_split', 'default')}"
    recipe = ", ".join(f"{k.split('.')[-1]} {params[k]}" for k in RECIPE_PARAMS if k in params)
    scores = ", ".join(
        f"{m} {float(tags[f'test_{m}']) * scale:.4f}{unit}"
        for m, (scale, unit) in SHOWN.items()
        if f"test_{m}" in tags
    )
    return "\n\n".join(  # paragraphs: the UI renders the description as Markdown
        [
            f"**Data**: {tags.get('dataset', '?')} at `{tags.get('data_root', '?')}` ({split}), "
            f"data_hash `{tags.get('data_hash', '?')[:12]}`",
            f"**Recipe**: run `{run.info.run_name}` ({recipe}), params_hash "
            f"`{tags.get('params_hash', '?')[:12]}`, git `{tags.get('git_commit', '?')[:12]}`",
            f"**Test metrics**: {scores or 'none recorded'}",
            f"{GATES_HEADING}: not evaluated yet (`gglops promote`)",
        ]
    )


def _record_gates(reg: ModelRegistry, decision: PromotionDecision) -> None:
    """Replace the description's gate line by this decision's checks and verdict."""
    mv = reg.version(decision.version)
    kept = [
        ln for ln in (mv.description or "").splitlines() if ln and not ln.startswith(GATES_HEADING)
    ]
    verdict = "passed" if decision.passed else "refused"
    checks = "; ".join(
        f"{'pass' if c.passed else 'FAIL'} {c.name} ({c.detail})" for c in decision.checks
    )
    against = (
        f"champion v{decision.champion_version}" if decision.champion_version else "no champion"
    )
    line = f"{GATES_HEADING}: {verdict} against {against} on {_now()}: {checks}"
    reg.client.update_model_version(
        reg.name, decision.version, description="\n\n".join([*kept, line])
    )


# --- promote ----------------------------------------------------------------------------


def _holder() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


@contextmanager
def _promotion_lease(reg: ModelRegistry, store: ArtifactStore) -> Iterator[None]:
    """Exclusive right to move this model's aliases (see `storage.lease`)."""
    try:
        with lease(store, LEASE_KEY.format(model=reg.name), _holder(), LEASE_TTL_S):
            yield
    except LeaseBusyError as exc:
        raise LeaseBusyError(f"{LOCK_BUSY}: {exc}") from None


def recorded_split(tags: dict[str, str], data_root: Path | None, version: str) -> SplitData:
    root = data_root or (Path(tags["data_root"]) if tags.get("data_root") else None)
    if root is None:
        raise UsageError(f"version {version} records no data_root tag; pass --data ROOT")
    # Versions registered before the protocol was a setting were evaluated at original size.
    resized = tags.get("data_eval_protocol") == "resized"
    return SplitData(
        root=root,
        layout=tags.get("data_layout", "auto"),
        split=tags.get("data_split"),
        data_hash=tags.get("data_hash"),
        eval_size=int(tags["data_image_size"]) if resized else None,
    )


def eval_params(data: SplitData) -> Params:
    """Params that evaluate under the version's recorded protocol."""
    if data.eval_size is None:
        return Params()
    return Params().with_overrides(
        {"data.eval_protocol": "resized", "data.image_size": data.eval_size}
    )


def _evaluate(bundle: Path, data: SplitData, label: str) -> EvalResult:
    from gglops.evaluate import evaluate_model

    params = eval_params(data)
    result = evaluate_model(bundle, data.root, params, layout=data.layout, split=data.split)
    return result.model_copy(update={"model": label})


def _check_same_data(result: EvalResult, data: SplitData, version: str) -> None:
    if data.data_hash and result.data_hash != data.data_hash:
        raise UsageError(
            f"{data.root}: data_hash {result.data_hash[:12]}… differs from the "
            f"{data.data_hash[:12]}… recorded on version {version}; use the same data"
        )


def _scores(result: EvalResult | None) -> Scores | None:
    return None if result is None else Scores(**result.scores())


def promote_version(
    version: str | None,
    settings: Settings,
    params: Params,
    data_root: Path | None = None,
    console: Console | None = None,
) -> PromotionDecision:
    """Gate `version` (default: alias candidate) against the champion; on pass release it."""
    console = console or Console(stderr=True)
    reg = ModelRegistry.open(settings)
    version = version or reg.alias(CANDIDATE)
    if version is None:
        raise UsageError(f"model {reg.name} has no alias {CANDIDATE}; pass --version")
    data = recorded_split(dict(reg.version(version).tags), data_root, version)
    store = ArtifactStore(settings)
    with _promotion_lease(reg, store), tempfile.TemporaryDirectory(prefix="gglops-") as tmp:
        decision, bundle, cand = _decide(reg, version, data, params.gates, Path(tmp))
        _record_gates(reg, decision)
        if decision.passed:
            release = _release(reg, store, version, bundle, data, cand.scores())
            decision = decision.model_copy(
                update={"onnx_uri": release.onnx_uri, "onnx_sha256": release.sha256}
            )
            _move_aliases(reg, version, decision.champion_version)
    print_decision(console, decision)
    return decision


def _decide(
    reg: ModelRegistry, version: str, data: SplitData, gates: GateParams, tmp: Path
) -> tuple[PromotionDecision, Path, EvalResult]:
    """Evaluate candidate and champion on `data`, apply the gates (changes nothing)."""
    champion = reg.alias(CHAMPION)
    bundle = reg.download(version, tmp / "candidate")
    cand = _evaluate(bundle, data, f"models:/{reg.name}/{version}")
    _check_same_data(cand, data, version)
    champ = None
    if champion is not None and champion != version:
        champ_bundle = reg.download(champion, tmp / "champion")
        champ = _evaluate(champ_bundle, data, f"models:/{reg.name}/{champion}")
    checks = check_gates(Scores(**cand.scores()), _scores(champ), gates)
    decision = PromotionDecision(
        passed=all(c.passed for c in checks),
        version=version,
        champion_version=champion,
        reasons=failures(checks) or ["all gates passed"],
        checks=checks,
        candidate_metrics=Scores(**cand.scores()),
        champion_metrics=_scores(champ),
        data_root=str(data.root),
        data_hash=cand.data_hash,
    )
    return decision, bundle, cand


def _move_aliases(reg: ModelRegistry, version: str, champion: str | None) -> None:
    if champion is not None and champion != version:
        reg.client.set_registered_model_alias(reg.name, PREVIOUS, champion)
    reg.client.set_registered_model_alias(reg.name, CHAMPION, version)


def _release(
    reg: ModelRegistry,
    store: ArtifactStore,
    version: str,
    bundle: Path,
    data: SplitData,
    metrics: dict[str, float],
) -> Release:
    """Export + parity on the test split, publish to S3, log on the run, tag the version."""
    from gglops.export import build_artifact, log_onnx, split_images
    from gglops.modelio import load_bundle

    mv = reg.version(version)
    images = split_images(data.root, data.layout, data.split)
    with tempfile.TemporaryDirectory(prefix="gglops-onnx-") as tmp:
        source = f"test split of {data.root}"
        artifact = build_artifact(load_bundle(bundle), Path(tmp) / "model.onnx", images, source)
        manifest = _manifest(reg.name, mv, artifact, metrics)
        prefix = RELEASE_PREFIX.format(model=reg.name, version=version)
        body = manifest.model_dump_json(indent=2).encode()
        outcome = publish(store, prefix, artifact.path, artifact.sha256, body)
        if outcome.uploaded:
            log_onnx(reg.uri, mv.run_id, artifact.path)
    reg.client.set_model_version_tag(reg.name, version, "onnx_sha256", artifact.sha256)
    reg.client.set_model_version_tag(reg.name, version, "onnx_uri", outcome.model_url)
    return Release(
        version=version,
        onnx_uri=outcome.model_url,
        manifest_uri=outcome.manifest_url,
        sha256=artifact.sha256,
        uploaded=outcome.uploaded,
    )


def _manifest(
    name: str, mv: Any, artifact: OnnxArtifact, metrics: dict[str, float]
) -> ReleaseManifest:
    tags = dict(mv.tags)
    return ReleaseManifest(
        name=name,
        version=str(mv.version),
        run_id=mv.run_id,
        sha256=artifact.sha256,
        size=artifact.size,
        opset=artifact.opset,
        exporter=artifact.exporter,
        inputs=artifact.inputs,
        outputs=artifact.outputs,
        parity_max_abs_diff=artifact.parity.max_abs_diff,
        metrics=metrics,
        lineage={k: tags[k] for k in (*LINEAGE_TAGS, *DATA_PARAMS) if k in tags},
        created_at=_now(),
    )


def release_version(version: str, settings: Settings, data_root: Path | None = None) -> Release:
    """(Re-)publish a version's ONNX artifact, no gates, no alias moves (idempotent).

    The manifest carries the metrics recorded on the version (test_* tags).
    """
    reg = ModelRegistry.open(settings)
    tags = dict(reg.version(version).tags)
    data = recorded_split(tags, data_root, version)
    metrics = {m: float(tags[f"test_{m}"]) for m in METRICS if f"test_{m}" in tags}
    store = ArtifactStore(settings)
    with tempfile.TemporaryDirectory(prefix="gglops-release-") as tmp:
        bundle = reg.download(version, Path(tmp))
        return _release(reg, store, version, bundle, data, metrics)


def print_decision(console: Console, decision: PromotionDecision) -> None:
    """Candidate vs champion, metric by metric, then every gate and the verdict."""
    cand, champ = decision.candidate_metrics, decision.champion_metrics
    table = Table(title=f"promotion of version {decision.version}")
    table.add_column("metric")
    table.add_column(f"candidate v{decision.version}", justify="right")
    table.add_column(f"champion v{decision.champion_version or '-'}", justify="right")
    for metric, (scale, unit) in SHOWN.items():
        theirs = "-" if champ is None else f"{getattr(champ, metric) * scale:.4f}{unit}"
        table.add_row(metric, f"{getattr(cand, metric) * scale:.4f}{unit}", theirs)
    console.print(table)
    for check in decision.checks:
        mark = "[green]pass[/]" if check.passed else "[red]FAIL[/]"
        console.print(f"  {mark} {check.name}: {check.detail}")
    verdict = "[green]promoted[/]" if decision.passed else "[red]not promoted[/]"
    console.print(f"version {decision.version}: {verdict}")
    if decision.onnx_uri:
        console.print(f"  ONNX {decision.onnx_uri} sha256 {decision.onnx_sha256}")


# --- rollback ---------------------------------------------------------------------------


def rollback_champion(settings: Settings, console: Console | None = None) -> RollbackResult:
    """`champion` ← `previous`; `previous` is cleared (see the module docstring)."""
    console = console or Console(stderr=True)
    reg = ModelRegistry.open(settings)
    store = ArtifactStore(settings)
    with _promotion_lease(reg, store):
        result = _rollback_locked(reg, store)
    console.print(f"champion: version {result.demoted} → version {result.champion}")
    if result.warning:
        console.print(f"[bold yellow]warning:[/] {result.warning}")
    return result


def _rollback_locked(reg: ModelRegistry, store: ArtifactStore) -> RollbackResult:
    previous = reg.alias(PREVIOUS)
    if previous is None:
        raise UsageError(f"model {reg.name} has no alias {PREVIOUS}: nothing to roll back to")
    champion = reg.alias(CHAMPION)
    prefix = RELEASE_PREFIX.format(model=reg.name, version=previous)
    missing = [f for f in RELEASE_FILES if not store.exists(f"{prefix}/{f}")]
    warning = None
    if missing:
        warning = (
            f"version {previous}'s artifact is incomplete at {store.url(prefix)} (missing "
            f"{', '.join(missing)}); re-publish it with `gglops promote --version {previous}`"
        )
    reg.client.set_registered_model_alias(reg.name, CHAMPION, previous)
    reg.client.delete_registered_model_alias(reg.name, PREVIOUS)
    if champion is not None:
        reg.client.set_model_version_tag(reg.name, champion, "rolled_back_at", _now())
    return RollbackResult(
        champion=previous, demoted=champion, artifact_ok=not missing, warning=warning
    )


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
