"""One local Ray instance shared by the whole session (Ray's start-up dominates small runs)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest


@pytest.fixture(scope="session")
def ray_local() -> Iterator[None]:
    """A local Ray with 4 logical CPUs (2 cores here: room for a controller + 2 workers)."""
    import ray

    if not ray.is_initialized():
        # "local": our own instance, even while another session's Ray runs on the machine.
        ray.init(address="local", num_cpus=4, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture
def ray_running(ray_local: None) -> None:
    """Re-initialise Ray if a multi-node test shut the shared instance down."""
    import ray

    if not ray.is_initialized():
        ray.init(address="local", num_cpus=4, include_dashboard=False, log_to_driver=False)
