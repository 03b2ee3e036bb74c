"""Hyperparameter search: a Ray Tune sweep whose trials are Ray Train runs of GGL-Net."""

from gglops.stages.tune.result import TrialSummary, TuneRequest, TuneResult
from gglops.stages.tune.sweep import SweepInterruptedError, run_tuning

__all__ = ["SweepInterruptedError", "TrialSummary", "TuneRequest", "TuneResult", "run_tuning"]
