"""Connecting to Ray (one function for train, tune and serve) and checking its capacity."""

from __future__ import annotations

import logging
import math
import os
from typing import Any

import ray

from gglops.adapters.raypatches import ray_logs_dir, use_loopback_node_ip
from gglops.core.errors import ServiceError, UsageError, first_line
from gglops.core.settings import Settings

ADDRESS_SETTING = "GGLOPS_RAY_ADDRESS"
log = logging.getLogger(__name__)
# Ray's own switches for a driver's console: its workers' and actors' stdout/stderr (Train's
# controller and placement-group cleaner, Tune's trials, core-worker errors) stay in the
# session's log files instead of being forwarded (`log_to_driver`), and its driver-side
# logger says only errors. The driver renders what matters itself (`progress_channel`,
# Tune callbacks) and names the log folder once.
QUIET_DRIVER: dict[str, Any] = {"log_to_driver": False, "logging_level": logging.ERROR}


def connect_ray(
    settings: Settings, cpus_needed: float = 1.0, address: str | None = None, flag: str = ""
) -> None:
    """An already initialised Ray as it is; else `address` (from the CLI `flag`, e.g. serve's
    --address) if given; else `GGLOPS_RAY_ADDRESS` if set; else a quiet local instance.

    A local Ray gets max(cpu_count, cpus_needed + 1) logical CPUs: the workers then fit even
    on a small machine (they share the cores; the +1 leaves room for the Train controller).
    """
    if ray.is_initialized():
        return
    address, named = (address, flag) if address else (settings.ray_address, ADDRESS_SETTING)
    if address:
        _join(settings, address, named)
        return
    cpus = max(os.cpu_count() or 1, math.ceil(cpus_needed) + 1)
    # "local": always a new instance of our own; without it ray.init() joins whichever Ray
    # on this machine started last (another user's, or a test's), and then refuses num_cpus.
    ray.init(
        address="local",
        num_cpus=cpus,
        include_dashboard=False,
        runtime_env=WORKER_SETUP,
        **QUIET_DRIVER,
    )
    address = ray.get_runtime_context().gcs_address
    _say(f"Ray: a local instance for this run ({cpus} CPUs, {address}); set {ADDRESS_SETTING} "
         "to use a cluster")  # fmt: skip
    _say_logs()


def _join(settings: Settings, address: str, named: str) -> None:
    if is_local_stack_head(settings, address):
        use_loopback_node_ip()
    try:
        ray.init(address=address, **QUIET_DRIVER)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        reason = first_line(exc)
        raise ServiceError(f"{named}={address}: cannot connect to Ray ({reason})") from None
    _say(f"Ray: {address} ({named})")
    _say_logs()


WORKER_SETUP = {"worker_process_setup_hook": f"{__name__}.pin_ray_address"}


def pin_ray_address() -> None:
    """Worker setup hook: point Ray's own state-API lookups (Train's placement-group cleaner)
    at this instance. Unset, they scan the machine for Ray instances and, finding several,
    print a "Found multiple active Ray instances" traceback in every run."""
    os.environ["RAY_ADDRESS"] = ray.get_runtime_context().gcs_address


def _say(line: str) -> None:
    log.info(line)


def _say_logs() -> None:
    """Ray's own lines stay out of the console (`QUIET_DRIVER`): say once where they are."""
    if (logs := ray_logs_dir()) is not None:
        _say(f"logs: {logs} (Ray's driver, workers and trials)")


def check_capacity(
    workers: int, use_gpu: bool, cpus_per_worker: float = 1.0, setting: str = "train.workers"
) -> None:
    """Refuse before any compute when the cluster can never place `workers` workers
    (`setting` names the param that asked for them)."""
    resources = ray.cluster_resources()
    cpus, gpus = resources.get("CPU", 0.0), resources.get("GPU", 0.0)
    if use_gpu and workers > gpus:
        raise UsageError(
            f"{setting}={workers} with train.use_gpu=true but the Ray cluster has {gpus:g} GPUs"
        )
    if workers * cpus_per_worker > cpus:
        raise UsageError(
            f"{setting}={workers} × {cpus_per_worker:g} CPUs each but the Ray cluster has"
            f" {cpus:g} CPUs"
        )


def is_local_stack_head(settings: Settings, address: str | None = None) -> bool:
    """`address` (default `GGLOPS_RAY_ADDRESS`) is the head that `gglops stack up` runs (on
    loopback, ours). Only that head runs with a 127.0.0.1 node IP; another head on this
    machine has the host's, and a driver must then keep the host's too."""
    from gglops.core.pids import PidRecord, is_ours

    host = (address or settings.ray_address or "").rpartition(":")[0]
    if host not in ("127.0.0.1", "localhost"):
        return False
    return is_ours(PidRecord.load(settings.stack_dir.absolute() / "ray.pid"))
