"""Connecting to Ray (one function, shared with `gglops tune`) and checking its capacity."""

from __future__ import annotations

import logging
import math
import os

import ray

from gglops.errors import ServiceError, UsageError
from gglops.settings import Settings

ADDRESS_SETTING = "GGLOPS_RAY_ADDRESS"


def connect_ray(settings: Settings, cpus_needed: float = 1.0) -> None:
    """`GGLOPS_RAY_ADDRESS` if set, else an already initialised Ray, else a quiet local one.

    A local Ray gets max(cpu_count, cpus_needed + 1) logical CPUs: the workers then fit even
    on a small machine (they share the cores; the +1 leaves room for the Train controller).
    """
    if ray.is_initialized():
        return
    if settings.ray_address:
        try:
            ray.init(address=settings.ray_address, logging_level=logging.WARNING)
        except (ConnectionError, RuntimeError) as exc:
            reason = str(exc).splitlines()[0][:160]
            raise ServiceError(
                f"{ADDRESS_SETTING}={settings.ray_address}: cannot connect to Ray ({reason})"
            ) from None
        return
    ray.init(
        num_cpus=max(os.cpu_count() or 1, math.ceil(cpus_needed) + 1),
        include_dashboard=False,
        logging_level=logging.WARNING,
    )


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
