"""Each patch of Ray internals in gglops.adapters.raypatches still finds what it patches."""

from __future__ import annotations

import logging
from pathlib import Path

import ray

from gglops.adapters import raypatches


def test_every_patched_ray_attribute_exists() -> None:
    from ray._private import ray_constants, worker
    from ray.train.v2._internal.execution import context
    from ray.tune.execution import class_cache

    assert hasattr(ray_constants, "ENABLE_RAY_CLUSTER")
    assert hasattr(worker, "_global_node")  # raypatches.ray_logs_dir reads it
    assert raypatches.PROPAGATED_CREDENTIALS & class_cache.ENV_VARS_TO_PROPAGATE
    # The report line is still logged under the file-path logger that the patch quiets.
    source = Path(context.__file__).read_text()
    assert "logging.getLogger(__file__)" in source and "Reporting training result" in source
    from ray.tune.experimental import output

    assert '"RAY_AIR_NEW_OUTPUT", "1") == "0"' in Path(output.__file__).read_text()
    assert ray.__version__ == raypatches.CHECKED_RAY, "re-check every patch, then bump it"


def test_quiet_train_reports_raises_the_report_loggers_level() -> None:
    logger = raypatches.train_report_logger()
    before = logger.level
    try:
        raypatches.quiet_train_reports()
        assert not logger.isEnabledFor(logging.INFO) and logger.isEnabledFor(logging.WARNING)
    finally:
        logger.setLevel(before)
