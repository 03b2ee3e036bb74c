"""Promotion gates: absolute floors/ceiling, and "no worse than the champion" within a tolerance.

All checks are computed (not only the first failure) so a refused promotion lists every
reason at once.
"""

from __future__ import annotations

from collections.abc import Callable

from pydantic import BaseModel, ConfigDict

from gglops.core.metrics import fa_text
from gglops.core.params import GateParams


class Scores(BaseModel):
    """The four test metrics of one model on one split (fa is a fraction of pixels)."""

    model_config = ConfigDict(frozen=True)

    miou: float
    niou: float
    pd: float
    fa: float


class GateCheck(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    passed: bool
    detail: str


# Absolute floors (metric ≥ bound) and the ceiling (fa ≤ bound), read from GateParams.
FLOORS: dict[str, Callable[[GateParams], float]] = {
    "miou": lambda g: g.min_miou,
    "pd": lambda g: g.min_pd,
}
CEILINGS: dict[str, Callable[[GateParams], float]] = {"fa": lambda g: g.max_fa}
# Metrics on which the candidate may trail the champion by at most `tolerance`.
VS_CHAMPION = ("miou", "pd")


def _floor(metric: str, value: float, bound: float) -> GateCheck:
    ok = value >= bound
    sign = "≥" if ok else "<"
    return GateCheck(
        name=f"min_{metric}", passed=ok, detail=f"{metric} {value:.4f} {sign} {bound:g}"
    )


def _ceiling(metric: str, value: float, bound: float) -> GateCheck:
    ok = value <= bound
    sign = "≤" if ok else ">"
    shown = f"{fa_text(value)} {sign} {fa_text(bound)}"
    return GateCheck(name=f"max_{metric}", passed=ok, detail=f"{metric} {shown}")


def _vs_champion(metric: str, cand: float, champ: float, tolerance: float) -> GateCheck:
    ok = cand >= champ - tolerance
    verdict = "within" if ok else "worse than"
    return GateCheck(
        name=f"{metric}_vs_champion",
        passed=ok,
        detail=f"{metric} {cand:.4f} {verdict} champion {champ:.4f} - tolerance {tolerance:g}",
    )


def check_gates(candidate: Scores, champion: Scores | None, gates: GateParams) -> list[GateCheck]:
    """Every gate's verdict for `candidate` (champion checks only when there is one)."""
    cand = candidate.model_dump()
    checks = [_floor(m, cand[m], bound(gates)) for m, bound in FLOORS.items()]
    checks += [_ceiling(m, cand[m], bound(gates)) for m, bound in CEILINGS.items()]
    if champion is not None:
        champ = champion.model_dump()
        checks += [_vs_champion(m, cand[m], champ[m], gates.tolerance) for m in VS_CHAMPION]
    return checks


def failures(checks: list[GateCheck]) -> list[str]:
    return [f"{c.name}: {c.detail}" for c in checks if not c.passed]
