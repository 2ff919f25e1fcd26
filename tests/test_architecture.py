"""The drawing of imports: `pipelines` on top, `lotus_core` and `recon` side by side under it with
no arrow between them, `sample_scenes` (test and bench data) on `recon` only; no cycles, no
upward arrows, every file under 500 lines.

Imports are read statically (AST), including those inside functions and under TYPE_CHECKING:
a lazy or type-only import is still an arrow. Only `recon` not loading torch needs a real
import, in a fresh interpreter.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("lotus_core", "recon", "pipelines", "sample_scenes")
# Which project packages each package may import (itself included).
ALLOWED = {
    "lotus_core": {"lotus_core"},
    "recon": {"recon"},
    "sample_scenes": {"sample_scenes", "recon"},
    "pipelines": {"pipelines", "recon", "lotus_core"},
}
MAX_LINES = 500


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def project_modules() -> dict[str, Path]:
    """Every module of the project packages: dotted name -> file."""
    return {module_name(p): p for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py"))}


def imported_names(path: Path, name: str) -> set[str]:
    """Absolute dotted names a module imports. `from a import b` gives `a.b` (a submodule, or a
    name defined in `a`, which `import_graph` walks back up to `a`)."""
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = name.split(".")
                anchor = anchor[: len(anchor) - node.level + (1 if is_package else 0)]
                base = ".".join(anchor + ([base] if base else []))
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def import_graph() -> dict[str, set[str]]:
    """Module -> the project modules it imports (the most specific existing module per name)."""
    modules = project_modules()
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets = set()
        for imported in imported_names(path, name):
            # `recon.records.Camera` is a name in recon.records: walk up to the module
            parts = imported.split(".")
            while parts and ".".join(parts) not in modules:
                parts.pop()
            if parts and ".".join(parts) != name:
                targets.add(".".join(parts))
        graph[name] = targets
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is None:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        top = stack.pop()
                        on_stack.discard(top)
                        component.append(top)
                        if top == node:
                            break
                    if len(component) > 1:
                        found.append(sorted(component))
            elif child not in index:
                index[child] = low[child] = len(index)
                stack.append(child)
                on_stack.add(child)
                work.append((child, iter(sorted(graph[child]))))
            elif child in on_stack:
                low[node] = min(low[node], index[child])
    return found


def test_the_graph_sees_every_kind_of_import():
    graph = import_graph()
    assert len(graph) > 60
    assert "recon.records" in graph["recon.align"]  # relative `from .records import ...`
    assert "recon.records" in graph["recon.refine"]
    assert graph["recon.priors.splat_slam"] >= {"recon.priors.tum", "recon.priors.common"}
    assert "lotus_core.normals" in graph["lotus_core.training.data"]
    assert "sample_scenes.training_data" in graph["sample_scenes.__main__"]  # inside a function


def test_cycle_finder_finds_a_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert cycles(graph) == [["a", "b", "c"]]


def test_no_arrow_leaves_its_layer():
    bad = [
        f"{name} imports {target}"
        for name, targets in import_graph().items()
        for target in targets
        if target.split(".")[0] not in ALLOWED[name.split(".")[0]]
    ]
    assert not bad, "\n".join(bad)


def test_no_import_cycles():
    assert cycles(import_graph()) == []


def test_every_python_file_is_under_500_lines():
    files = [ROOT / p for p in PACKAGES + ("bench", "tests")]
    long = {
        str(p.relative_to(ROOT)): n
        for d in files
        for p in sorted(d.rglob("*.py"))
        if (n := len(p.read_text().splitlines())) >= MAX_LINES
    }
    assert not long, long


# What importing every module of a package must not load (checked in a fresh interpreter, so
# dynamic imports count too).
FORBIDDEN_AT_RUNTIME = {
    "recon": ("torch", "diffusers", "lotus_core", "pipelines", "sample_scenes"),
    "lotus_core": ("recon", "pipelines", "sample_scenes"),
}


@pytest.mark.parametrize("package", sorted(FORBIDDEN_AT_RUNTIME))
def test_importing_every_module_loads_nothing_forbidden(package):
    names = sorted(n for n in project_modules() if n.split(".")[0] == package)
    code = (
        "import importlib, sys\n"
        f"for name in {names!r}:\n"
        "    importlib.import_module(name)\n"
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {FORBIDDEN_AT_RUNTIME[package]!r}))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip().splitlines()[-1] == "[]", result.stdout[-500:]
