"""Promotion of a registered version through the gates, and rollback.

Order, so that a failure at any step leaves nothing half-done:
1. take the promotion lease (an S3 object created with If-None-Match, see `storage.lease`),
   so two promotions cannot interleave their alias moves;
2. evaluate candidate and champion on the same test split (the data recorded on the
   candidate, or `--data` if its manifest hash matches) under the candidate's recorded
   evaluation protocol (`data.eval_protocol`), and apply the gates;
3. on pass: release it (`gglops.stages.release`: ONNX, parity, upload, manifest last); only THEN
   move the aliases.

Rollback moves `champion` back to `previous` and clears `previous`: a second rollback is
refused instead of silently re-promoting the version that was just demoted (re-promote it
with `gglops promote --version N`, which runs the gates again).
"""

from __future__ import annotations

import logging
import os
import socket
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from gglops.adapters.registry import (
    CANDIDATE,
    CHAMPION,
    GATES_HEADING,
    PREVIOUS,
    ModelRegistry,
    SplitData,
    now,
    recorded_split,
)
from gglops.adapters.s3 import ArtifactStore, LeaseBusyError, lease
from gglops.core.errors import UsageError
from gglops.core.gates import GateCheck, Scores, check_gates, failures
from gglops.core.params import GateParams, Params
from gglops.core.settings import Settings
from gglops.data.evalsplit import EvalSplit
from gglops.stages.evaluate import EvalResult
from gglops.stages.release import RELEASE_FILES, RELEASE_PREFIX, publish_release

log = logging.getLogger(__name__)

LEASE_KEY = "locks/{model}/promotion.json"
LEASE_TTL_S = 30 * 60  # longer than a promotion takes; a crashed one blocks at most this
LOCK_BUSY = "another promotion is in progress"


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
    model_selection: str | None = None  # the split that chose the candidate (data.selection)

    def dvc_metrics(self) -> dict[str, Any]:
        """The decision as DVC metrics (`promote --record`): scalars DVC tabulates (promoted,
        version, each gate), and the reasons, a list DVC keeps in the file but not in tables."""
        return {
            "promoted": self.passed,
            "version": _number(self.version),
            "champion_version": _number(self.champion_version),
            "gates": {check.name: check.passed for check in self.checks},
            "reasons": self.reasons,
        }


def _number(version: str | None) -> int | str | None:
    return int(version) if version is not None and version.isdigit() else version


class RollbackResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    champion: str
    demoted: str | None
    artifact_ok: bool
    warning: str | None = None


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
    line = f"{GATES_HEADING}: {verdict} against {against} on {now()}: {checks}"
    reg.client.update_model_version(
        reg.name, decision.version, description="\n\n".join([*kept, line])
    )


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


def _evaluate(model: Any, test: EvalSplit, label: str) -> EvalResult:
    from gglops.model.inference import torch_prob_fn
    from gglops.stages.evaluate import score

    return score(torch_prob_fn(model), test, label)


def _check_same_data(test: EvalSplit, data: SplitData, version: str) -> None:
    found = test.manifest.data_hash
    if data.data_hash and found != data.data_hash:
        raise UsageError(
            f"{data.root}: data_hash {found[:12]}… differs from the "
            f"{data.data_hash[:12]}… recorded on version {version}; use the same data"
        )


def _scores(result: EvalResult | None) -> Scores | None:
    return None if result is None else Scores(**result.scores())


def promote_version(
    version: str | None,
    settings: Settings,
    params: Params,
    data_root: Path | None = None,
    phase: Callable[[str], None] = lambda _: None,
) -> PromotionDecision:
    """Gate `version` (default: alias candidate) against the champion; on pass release it.
    `phase(name)` as each part (loading, evaluating, exporting, uploading) starts."""
    reg = ModelRegistry.open(settings)
    version = version or reg.alias(CANDIDATE)
    if version is None:
        raise UsageError(f"model {reg.name} has no alias {CANDIDATE}; pass --version")
    tags = dict(reg.version(version).tags)
    data = recorded_split(tags, data_root, version)
    selection = tags.get("data_selection")
    if selection == "test":
        log.warning(
            "version %s was chosen on the test split (data.selection=test): the gates judge "
            "test metrics that played a part in that choice",
            version,
        )
    # Decoded and hashed once: both evaluations and the ONNX parity check read this.
    phase(f"reading the test split of {data.root}")
    test = EvalSplit.load(data.root, data.layout, data.split, data.eval_size, data.custom)
    _check_same_data(test, data, version)
    store = ArtifactStore(settings)
    with _promotion_lease(reg, store), tempfile.TemporaryDirectory(prefix="gglops-") as tmp:
        decision, model, cand = _decide(reg, version, test, params.gates, Path(tmp), phase)
        _record_gates(reg, decision)
        if decision.passed:
            release = publish_release(reg, store, version, model, test, cand.scores(), phase)
            decision = decision.model_copy(
                update={"onnx_uri": release.onnx_uri, "onnx_sha256": release.sha256}
            )
            _move_aliases(reg, version, decision.champion_version)
    return decision.model_copy(update={"model_selection": selection})


def _decide(
    reg: ModelRegistry,
    version: str,
    test: EvalSplit,
    gates: GateParams,
    tmp: Path,
    phase: Callable[[str], None],
) -> tuple[PromotionDecision, Any, EvalResult]:
    """Evaluate candidate and champion on `test`, apply the gates (changes nothing).
    Returns the decision, the candidate's loaded model and its result."""
    champion = reg.alias(CHAMPION)
    phase(f"evaluating candidate v{version} on {len(test.index.test)} test images")
    model = reg.load_model(version, tmp / "candidate")
    cand = _evaluate(model, test, f"models:/{reg.name}/{version}")
    champ = None
    if champion is not None and champion != version:
        phase(f"evaluating champion v{champion}")
        champ_model = reg.load_model(champion, tmp / "champion")
        champ = _evaluate(champ_model, test, f"models:/{reg.name}/{champion}")
    checks = check_gates(Scores(**cand.scores()), _scores(champ), gates)
    decision = PromotionDecision(
        passed=all(c.passed for c in checks),
        version=version,
        champion_version=champion,
        reasons=failures(checks) or ["all gates passed"],
        checks=checks,
        candidate_metrics=Scores(**cand.scores()),
        champion_metrics=_scores(champ),
        data_root=str(test.index.root),
        data_hash=cand.data_hash,
    )
    return decision, model, cand


def _move_aliases(reg: ModelRegistry, version: str, champion: str | None) -> None:
    if champion is not None and champion != version:
        reg.client.set_registered_model_alias(reg.name, PREVIOUS, champion)
    reg.client.set_registered_model_alias(reg.name, CHAMPION, version)


def rollback_champion(settings: Settings) -> RollbackResult:
    """`champion` ← `previous`; `previous` is cleared (see the module docstring)."""
    reg = ModelRegistry.open(settings)
    store = ArtifactStore(settings)
    with _promotion_lease(reg, store):
        return _rollback_locked(reg, store)


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
        reg.client.set_model_version_tag(reg.name, champion, "rolled_back_at", now())
    return RollbackResult(
        champion=previous, demoted=champion, artifact_ok=not missing, warning=warning
    )
