"""No import cycle anywhere in the layer, the local stack or the CDK app: an import inside a function counts
as much as one at the top (it runs the same module graph, only later); an import under `if TYPE_CHECKING:`
does not (it never runs). Two levels are held: modules, and the layer's top-level packages (a domain
package that imports another must not be imported back by it, directly or through a third)."""

from __future__ import annotations

import ast
from collections import defaultdict
from collections.abc import Iterable, Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
SOURCES = {
    "billing_platform": ROOT / "layers" / "core" / "python" / "billing_platform",
    "local_stack": ROOT / "local_stack",
    "infra": ROOT / "infra",
}


def module_files() -> dict[str, Path]:
    modules: dict[str, Path] = {}
    for folder in SOURCES.values():
        for path in sorted(folder.rglob("*.py")):
            parts = path.relative_to(folder.parent).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            modules[name] = path
    return modules


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped.update(id(child) for child in node.body for child in ast.walk(child))
    return skipped


def _resolve(name: str, modules: Mapping[str, Path]) -> str | None:
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def imports_of(module: str, path: Path, modules: Mapping[str, Path]) -> set[str]:
    """The project modules `module` imports, wherever the statement stands (TYPE_CHECKING blocks aside).
    `from a.b import c` counts `a.b.c` when that is a module, else `a.b`."""
    tree = ast.parse(path.read_text(), filename=str(path))
    skipped = _type_checking_nodes(tree)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}" if base else anchor
            names = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]
        for name in names:
            target = _resolve(name, modules)
            if target is not None and target != module and not module.startswith(f"{target}."):
                found.add(target)
    return found


def cycles(graph: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """The strongly connected components with more than one member (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for successor in graph.get(node, ()):
            if successor not in index:
                visit(successor)
                low[node] = min(low[node], low[successor])
            elif successor in on_stack:
                low[node] = min(low[node], index[successor])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def module_graph() -> dict[str, set[str]]:
    modules = module_files()
    return {module: imports_of(module, path, modules) for module, path in modules.items()}


def package_of(module: str) -> str:
    """`billing_platform.entitlements.dal.items` -> `billing_platform.entitlements`; a top-level module of
    the layer is its own package."""
    return ".".join(module.split(".")[:2])


def test_no_module_imports_itself_back() -> None:
    assert cycles(module_graph()) == []


def test_no_layer_package_imports_itself_back() -> None:
    packages: dict[str, set[str]] = defaultdict(set)
    for module, targets in module_graph().items():
        if not module.startswith("billing_platform."):
            continue
        for target in targets:
            # The layer's root package only loads names lazily (billing_platform/__init__.py): not an edge.
            if target.startswith("billing_platform.") and package_of(target) != package_of(module):
                packages[package_of(module)].add(package_of(target))
    assert cycles(packages) == []


def test_the_detector_sees_a_cycle_through_an_import_inside_a_function(tmp_path: Path) -> None:
    first = tmp_path / "first.py"
    second = tmp_path / "second.py"
    first.write_text("import second\n")
    second.write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import first\n")
    modules = {"first": first, "second": second}
    graph = {name: imports_of(name, path, modules) for name, path in modules.items()}
    assert cycles(graph) == []
    second.write_text("def later():\n    from first import something\n")
    graph = {name: imports_of(name, path, modules) for name, path in modules.items()}
    assert cycles(graph) == [["first", "second"]]
