"""Hyperparameter search: a Ray Tune sweep whose trials are Ray Train runs of GGL-Net."""

from gglops.tune.models import TrialSummary, TuneRequest, TuneResult
from gglops.tune.sweep import SweepInterruptedError, run_tuning

__all__ = ["SweepInterruptedError", "TrialSummary", "TuneRequest", "TuneResult", "run_tuning"]
