"""Shared fixtures live in one plugin module per service, so each can evolve on its own.

A test is `integration` (real Ray, MLflow, S3, or a subprocess that starts them) when it uses
one of the service fixtures below, directly or through another fixture, or sits in a module
that says `pytestmark = pytest.mark.integration`. `make test-fast` runs the rest.
"""

from __future__ import annotations

import pytest

pytest_plugins = [
    "fixtures_ray",
    "fixtures_stack",
    "fixtures_data",
    "fixtures_reliability",
    "fixtures_cli",
    "fixtures_sirst",
]

SERVICE_FIXTURES = frozenset(
    {"stack", "stack_env", "ray_head", "ray_local", "ray_running", "cli_stack"}
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if SERVICE_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.integration)
