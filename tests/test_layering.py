"""docs/architecture.md's layering, checked on the real import graph (tools/import_graph.py)."""

from __future__ import annotations

from tools.import_graph import Graph, build, violations


def test_the_import_graph_keeps_the_layers() -> None:
    graph = build()
    assert "gglops.train" in graph.edges and "gglnet" in graph.edges  # the graph was read
    assert violations(graph) == []


def test_the_checker_sees_each_kind_of_violation() -> None:
    graph = Graph()
    for source, target in [
        ("gglnet.model", "gglops.errors"),
        ("gglops.train.loop", "gglops.tracking"),
        ("gglops.tracking", "gglops.registry"),
        ("gglops.report", "gglops.cli.common"),
        ("gglops.errors", "gglops.report"),
        ("gglops.report", "gglops.errors"),
    ]:
        graph.add(source, target)
    found = violations(graph)
    assert "gglnet imports gglops.errors" in found
    assert "gglops.train reaches gglops.registry" in found
    assert any(v.startswith("gglops.report imports the CLI") for v in found)
    assert any(v.startswith("cycle: ") for v in found)
