"""The import graph of gglops and gglnet, and the layering rules it must keep.

    python tools/import_graph.py            # edges between components, then the checks
    python tools/import_graph.py --mermaid  # the same graph as a Mermaid block

Every `import`, also those inside functions (they run too), counts. A component is `gglnet`
or `gglops.<first name>` (`gglops.stages.train`, `gglops.adapters.registry`, ...). Rules:
- `gglnet` imports nothing of `gglops` (the model package is pure torch);
- the training loop (`gglops.stages.train`) never reaches the registry or promotion, even
  transitively;
- nothing imports the CLI but the CLI itself and `gglops.__main__`;
- `gglops.core` imports no service library (ray, mlflow, boto3);
- nothing in gglops imports `devstack` but the CLI;
- no stage imports the CLI or `gglops.serve`;
- `gglops.model` imports only `gglops.core`, `gglops.data` and `gglnet`, and no service
  library: a model is loaded and run without a tracking server or a cluster;
- the component graph has no cycles.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCES = {
    "gglops": ROOT / "platform" / "gglops",
    "devstack": ROOT / "platform" / "devstack",
    "gglnet": ROOT / "models" / "gglnet",
}
TRAINING = "gglops.stages.train"
REGISTRY_SIDE = frozenset(
    {"gglops.adapters.registry", "gglops.stages.promote", "gglops.stages.release"}
)
CLI = "gglops.cli"
DEVSTACK = "devstack"
ROLES = frozenset({"core", "model", "adapters", "stages"})  # a component is one level inside
CORE = "gglops.core."
SERVICE_LIBRARIES = frozenset({"ray", "mlflow", "boto3", "botocore"})
MODEL = "gglops.model."
MODEL_MAY_IMPORT = ("gglops.model.", "gglops.core.", "gglops.data.", "gglnet")


def module_name(package: str, root: Path, path: Path) -> str:
    parts = [package, *path.relative_to(root).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(tree: ast.AST, module: str, is_package: bool) -> Iterator[str]:
    base = module.split(".") if is_package else module.split(".")[:-1]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            anchor = base[: len(base) - node.level + 1] if node.level else []
            target = ".".join([*anchor, *(node.module.split(".") if node.module else [])])
            yield target
            yield from (f"{target}.{alias.name}" for alias in node.names)


def component(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] in ("gglnet", DEVSTACK):
        return parts[0]
    if parts[0] != "gglops" or len(parts) == 1:
        return "gglops" if parts[0] == "gglops" else None
    depth = 3 if parts[1] in ROLES and len(parts) > 2 else 2
    return ".".join(parts[:depth])


@dataclass
class Graph:
    edges: dict[str, set[str]] = field(default_factory=dict)
    # (importing module, imported component) for messages
    sites: dict[tuple[str, str], set[str]] = field(default_factory=dict)
    # component -> the service libraries its modules import
    services: dict[str, set[str]] = field(default_factory=dict)

    def add_external(self, source: str, target: str) -> None:
        src, top = component(source), target.split(".", maxsplit=1)[0]
        if src is not None and top in SERVICE_LIBRARIES:
            self.services.setdefault(src, set()).add(top)

    def add(self, source: str, target: str) -> None:
        src, dst = component(source), component(target)
        if src is None or dst is None or dst in (src, "gglops"):
            return
        self.edges.setdefault(src, set()).add(dst)
        self.edges.setdefault(dst, set())
        self.sites.setdefault((src, dst), set()).add(source)

    def reach(self, start: str) -> set[str]:
        seen, todo = set(), [start]
        while todo:
            for nxt in self.edges.get(todo.pop(), ()):
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        return seen

    def cycles(self) -> list[list[str]]:
        found, state = [], dict.fromkeys(self.edges, 0)

        def visit(node: str, path: list[str]) -> None:
            state[node] = 1
            for nxt in sorted(self.edges[node]):
                if state[nxt] == 1:
                    found.append([*path[path.index(nxt) :], nxt])
                elif state[nxt] == 0:
                    visit(nxt, [*path, nxt])
            state[node] = 2

        for node in sorted(self.edges):
            if state[node] == 0:
                visit(node, [node])
        return found


def build() -> Graph:
    graph = Graph()
    files = [
        (package, root, path) for package, root in SOURCES.items() for path in root.rglob("*.py")
    ]
    modules = {module_name(package, root, path) for package, root, path in files}
    known = {component(m) for m in modules}  # `from gglops import __version__` is no module
    for package, root, path in sorted(files):
        module = module_name(package, root, path)
        tree = ast.parse(path.read_text(), filename=str(path))
        for target in imported(tree, module, path.name == "__init__.py"):
            if component(target) in known:
                graph.add(module, target)
            else:
                graph.add_external(module, target)
    return graph


def violations(graph: Graph) -> list[str]:
    found = [f"gglnet imports {dst}" for dst in sorted(graph.edges.get("gglnet", ()))]
    reached = graph.reach(TRAINING) & REGISTRY_SIDE
    found += [f"{TRAINING} reaches {dst}" for dst in sorted(reached)]
    found += [
        f"{src} imports the CLI ({', '.join(sorted(graph.sites[(src, CLI)]))})"
        for src, dsts in sorted(graph.edges.items())
        if CLI in dsts and src not in {CLI, "gglops.__main__"}
    ]
    found += [
        f"{src} imports {', '.join(sorted(libs))}"
        for src, libs in sorted(graph.services.items())
        if src.startswith(CORE)
    ]
    found += [
        f"{src} imports {DEVSTACK}"
        for src, dsts in sorted(graph.edges.items())
        if DEVSTACK in dsts and src.startswith("gglops") and src != CLI
    ]
    found += [
        f"{src} imports {dst}"
        for src, dsts in sorted(graph.edges.items())
        if src.startswith("gglops.stages.")
        for dst in sorted(dsts)
        if dst == CLI or dst.startswith("gglops.serve")
    ]
    found += [
        f"{src} imports {dst} ({', '.join(sorted(graph.sites[(src, dst)]))})"
        for src, dsts in sorted(graph.edges.items())
        if src.startswith(MODEL)
        for dst in sorted(dsts)
        if not dst.startswith(MODEL_MAY_IMPORT)
    ]
    found += [
        f"{src} imports {', '.join(sorted(libs))}"
        for src, libs in sorted(graph.services.items())
        if src.startswith(MODEL)
    ]
    found += ["cycle: " + " → ".join(cycle) for cycle in graph.cycles()]
    return found


def mermaid(graph: Graph) -> str:
    lines = ["```mermaid", "graph LR"]
    for src, dsts in sorted(graph.edges.items()):
        lines += [
            f"  {src.replace('.', '_')}[{src}] --> {dst.replace('.', '_')}[{dst}]"
            for dst in sorted(dsts)
        ]
    return "\n".join([*lines, "```"])


def main() -> int:
    graph = build()
    if "--mermaid" in sys.argv:
        print(mermaid(graph))
        return 0
    for src, dsts in sorted(graph.edges.items()):
        print(f"{src:22} → {', '.join(sorted(dsts)) or '-'}")
    problems = violations(graph)
    print("\n".join(f"VIOLATION {p}" for p in problems) or "layering: ok (9 rules)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
