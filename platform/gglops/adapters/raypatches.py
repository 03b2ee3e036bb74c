"""Every change gglops makes to Ray's internals, where Ray offers no option for it.

Checked against Ray 2.60.0 (`CHECKED_RAY`); tests/adapters/test_raypatches.py fails when an
attribute patched here is gone, so an upgrade of Ray shows which patch to revisit.
"""

from __future__ import annotations

import logging
import os

CHECKED_RAY = "2.60.0"
# Ray's switch for single-node Windows/macOS clusters; "0" makes a node's IP 127.0.0.1.
LOOPBACK_NODE_IP_VAR = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"
# Ray Tune copies these from the driver's env into each trial actor's runtime env, which
# Ray's runtime-env agent logs in clear (runtime_env_agent.log).
PROPAGATED_CREDENTIALS = frozenset(
    {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SECURITY_TOKEN", "AWS_SESSION_TOKEN"}
)


def ray_logs_dir() -> str | None:
    """Where this machine's Ray node writes its driver, worker and system logs (the session's
    `logs/`); None where Ray does not say. Ray 2.x has no public accessor for it."""
    from ray._private import worker

    node = getattr(worker, "_global_node", None)
    return node.get_logs_dir_path() if node is not None else None


def use_loopback_node_ip() -> None:
    """Agree with the stack's head, whose node IP is 127.0.0.1: without this Ray rewrites a
    127.0.0.1 address to the host's and cannot reach the loopback GCS. Ray reads the variable
    when it is imported, so the imported constant is set as well."""
    from ray._private import ray_constants

    os.environ[LOOPBACK_NODE_IP_VAR] = "0"
    ray_constants.ENABLE_RAY_CLUSTER = False


def keep_credentials_on_the_nodes() -> None:
    """On a cluster the nodes carry their own S3 keys (a Secret, the stack head's env): stop
    Tune from shipping the driver's copy through a logged runtime env."""
    from ray.tune.execution import class_cache

    class_cache.ENV_VARS_TO_PROPAGATE = class_cache.ENV_VARS_TO_PROPAGATE - PROPAGATED_CREDENTIALS


def quiet_tune_output() -> None:
    """Tune's new output engine prints the results folder and a TensorBoard hint whatever the
    verbosity; its legacy engine at `verbose=0` prints nothing (Ray's own switch)."""
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")


def train_report_logger() -> logging.Logger:
    """The logger of Ray Train V2's per-report INFO line ("Reporting training result N: …"):
    it is named by its module's file path, so neither `ray.train` nor RunConfig's
    LoggingConfig reaches it."""
    from ray.train.v2._internal.execution import context

    return logging.getLogger(context.__file__)


def quiet_train_reports() -> None:
    """In a training worker: keep Ray's per-epoch report line out of the console (our own
    epoch line says the same, once)."""
    train_report_logger().setLevel(logging.WARNING)
