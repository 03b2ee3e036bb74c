"""docs/architecture.md's layering, checked on the real import graph (tools/import_graph.py)."""

from __future__ import annotations

from tools.import_graph import Graph, build, violations


def test_the_import_graph_keeps_the_layers() -> None:
    graph = build()
    assert "gglops.stages.train" in graph.edges and "gglnet" in graph.edges  # the graph was read
    assert violations(graph) == []


def test_the_checker_sees_each_kind_of_violation() -> None:
    graph = Graph()
    for source, target in [
        ("gglnet.model", "gglops.core.errors"),
        ("gglops.stages.train.loop", "gglops.adapters.tracking"),
        ("gglops.adapters.tracking", "gglops.adapters.registry"),
        ("gglops.stages.report", "gglops.cli.common"),
        ("gglops.core.errors", "gglops.stages.report"),
        ("gglops.stages.report", "gglops.core.errors"),
        ("gglops.adapters.raycluster", "devstack.process"),
        ("gglops.stages.promote", "gglops.serve.app"),
    ]:
        graph.add(source, target)
    graph.add_external("gglops.core.settings", "boto3.session")
    found = violations(graph)
    assert "gglnet imports gglops.core.errors" in found
    assert "gglops.stages.train reaches gglops.adapters.registry" in found
    assert any(v.startswith("gglops.stages.report imports the CLI") for v in found)
    assert any(v.startswith("cycle: ") for v in found)
    assert "gglops.core.settings imports boto3" in found
    assert "gglops.adapters.raycluster imports devstack" in found
    assert "gglops.stages.promote imports gglops.serve" in found


def test_every_module_outside_the_cli_has_a_name_of_its_own() -> None:
    from tools.import_graph import SOURCES

    names: dict[str, list[str]] = {}
    for root in SOURCES.values():
        for path in root.rglob("*.py"):
            if path.name != "__init__.py" and "cli" not in path.relative_to(root).parts:
                names.setdefault(path.name, []).append(str(path.relative_to(root.parent)))
    assert {name: paths for name, paths in names.items() if len(paths) > 1} == {}
