"""Shared fixtures live in one plugin module per service, so each can evolve on its own."""

pytest_plugins = [
    "fixtures_ray",
    "fixtures_stack",
    "fixtures_data",
    "fixtures_reliability",
    "fixtures_cli",
]
