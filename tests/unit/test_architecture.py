"""The import graph of ``propdev``: no cycles, HTTP only at the edge, the dev kit only at the root.

Read from the source with ``ast`` (nothing is imported). How an import counts:

- Every import statement counts wherever it stands: at the top of a module, inside a function
  (an import hidden in a function is a dependency all the same) and under ``if TYPE_CHECKING:``.
- The **module graph** counts ``TYPE_CHECKING`` imports too: two modules that each need the other
  to be read are one module, whichever runs first. Nothing imports the composition root
  (``propdev.node``, ``propdev.cli``), not even for a type: what the front ends are built from is
  a Protocol of theirs (``http.app.NodeServices``, ``grpc.server.GrpcNode``) that ``Node``
  satisfies.
- The **subpackage graph** (``propdev.X``: a subpackage or a top-level module) counts run-time
  imports only: a subpackage may name a higher layer's type in an annotation (STYLE.md,
  "``TYPE_CHECKING`` against cycles"), as the device actor names the bus it is given.
- ``from P import name`` is an edge to the module ``P.name`` when there is one, else to ``P``.
  A module inside a package names its siblings, never its own package (or an enclosing
  package of the same subpackage that has an ``__init__``): that ``__init__`` imports it back.
  A sibling used as a namespace is ``import propdev.management.fields as fields``. Generated
  code (``propdev/grpc/partner_pb2*``) is held to every rule but this one: protoc writes it.
"""

from __future__ import annotations

import ast
import itertools
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = "propdev"

EDGE = ("propdev.http", "propdev.grpc", "propdev.devkit")  # HTTP and problem documents live here
COMPOSITION_ROOT = frozenset({"propdev.node", "propdev.cli"})
GENERATED = ("propdev.grpc.partner_pb2",)  # protoc writes their imports (ruff skips them too)
DEVKIT = "propdev.devkit"
PROBLEM_MARKERS = ("problem+json", "propdev.example/problems/")
PROBLEM_FIELDS = frozenset({"type", "title", "status", "detail"})


@dataclass(frozen=True, slots=True)
class Module:
    name: str
    path: Path
    file: str  # the path from the root, for messages
    is_package: bool  # an __init__.py

    @property
    def package(self) -> str:
        return self.name if self.is_package else self.name.rpartition(".")[0]

    def where(self, line: int) -> str:
        return f"{self.file}:{line}"


@dataclass(frozen=True, slots=True)
class Import:
    importer: str
    imported: str  # a module of the tree
    named_from: str  # the module the statement names (``from X import y`` names X)
    line: int
    typing_only: bool  # under ``if TYPE_CHECKING:``
    where: str


def discover(root: Path, package: str = PACKAGE) -> dict[str, Module]:
    modules: dict[str, Module] = {}
    for path in sorted((root / package).rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        if is_package:
            parts.pop()
        file = path.relative_to(root).as_posix()
        modules[".".join(parts)] = Module(".".join(parts), path, file, is_package)
    return modules


def _packages(modules: Mapping[str, Module]) -> set[str]:
    """Every package name, namespace packages (no ``__init__``) included."""
    found = {m.package for m in modules.values()}
    return found | {p.rpartition(".")[0] for p in found if "." in p}


def _resolve(name: str, known: set[str]) -> str | None:
    while name:
        if name in known:
            return name
        name = name.rpartition(".")[0]
    return None


def _typing_only_nodes(tree: ast.Module) -> set[int]:
    inside: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for statement in node.body:
                inside.update(id(n) for n in ast.walk(statement))
    return inside


def imports_of(module: Module, modules: Mapping[str, Module]) -> list[Import]:
    known = set(modules) | _packages(modules)
    tree = ast.parse(module.path.read_text(encoding="utf-8"))
    typing_only = _typing_only_nodes(tree)
    found: list[Import] = []
    for node in ast.walk(tree):
        targets: list[tuple[str, str]] = []  # (full name, the module the statement names)
        if isinstance(node, ast.Import):
            targets = [(alias.name, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.package.split(".")[
                    : len(module.package.split(".")) - node.level + 1
                ]
                base = ".".join([*anchor, base] if base else anchor)
            targets = [(f"{base}.{alias.name}", base) for alias in node.names]
        for full, named in targets:
            if not full.startswith(PACKAGE + "."):
                continue
            target = full if full in modules else _resolve(named, known)
            if target is None or target == module.name:
                continue
            found.append(
                Import(
                    module.name,
                    target,
                    named,
                    node.lineno,
                    id(node) in typing_only,
                    module.where(node.lineno),
                )
            )
    return found


def all_imports(modules: Mapping[str, Module]) -> list[Import]:
    return [i for m in modules.values() for i in imports_of(m, modules)]


def strongly_connected(graph: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """Tarjan's components of more than one node (and self-loops), each sorted, in order."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1 or node in graph.get(node, ()):
                components.append(sorted(component))

    for node in sorted(set(graph) | {n for targets in graph.values() for n in targets}):
        if node not in index:
            visit(node)
    return sorted(components)


def cycle_through(component: list[str], graph: Mapping[str, Iterable[str]]) -> list[str]:
    """One shortest cycle inside ``component`` through its first member: ``[a, b, …, a]``."""
    start, members = component[0], set(component)
    came_from: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for nxt in sorted(graph.get(node, ())):
                if nxt not in members:
                    continue
                if nxt == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(came_from[path[-1]])
                    return [*reversed(path), start]
                if nxt not in came_from:
                    came_from[nxt] = node
                    following.append(nxt)
        frontier = following
    raise AssertionError(f"{component} is not a cycle")


def _how(edge: Import) -> str:
    return f"{edge.where}, TYPE_CHECKING" if edge.typing_only else edge.where


def find_cycles(
    edges: Mapping[tuple[str, str], Import],
) -> list[str]:
    """One message per cycle: its members and one chain of imports around it, each with its line."""
    graph: dict[str, set[str]] = defaultdict(set)
    for source, target in edges:
        graph[source].add(target)
    messages = []
    for component in strongly_connected(graph):
        chain = cycle_through(component, graph)
        steps = [f"{a} -> {b} ({_how(edges[a, b])})" for a, b in itertools.pairwise(chain)]
        messages.append(f"cycle among {', '.join(component)}:\n    " + "\n    ".join(steps))
    return messages


def subpackage_of(name: str) -> str:
    return ".".join(name.split(".")[:2])


def module_edges(imports: Iterable[Import]) -> dict[tuple[str, str], Import]:
    edges: dict[tuple[str, str], Import] = {}
    for i in imports:
        edges.setdefault((i.importer, i.imported), i)
    return edges


def subpackage_edges(imports: Iterable[Import]) -> dict[tuple[str, str], Import]:
    edges: dict[tuple[str, str], Import] = {}
    for i in imports:
        source, target = subpackage_of(i.importer), subpackage_of(i.imported)
        if not i.typing_only and source != target:
            edges.setdefault((source, target), i)
    return edges


def _docstrings(tree: ast.Module) -> set[int]:
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                found.add(id(body[0].value))
    return found


def http_at_module(module: Module) -> list[str]:
    """``aiohttp.web`` imports and problem documents written in ``module``, each with its line."""
    tree = ast.parse(module.path.read_text(encoding="utf-8"))
    docstrings = _docstrings(tree)
    found = []
    for node in ast.walk(tree):
        line = getattr(node, "lineno", 0)
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module == "aiohttp":
            names = [f"aiohttp.{a.name}" for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [node.module or ""]
        else:
            names = []
        for name in names:
            if name == "aiohttp.web" or name.startswith(("aiohttp.web.", "aiohttp.web_")):
                found.append(f"{module.where(line)} imports {name}")
        if (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and id(node) not in docstrings
            and any(marker in node.value for marker in PROBLEM_MARKERS)
        ):
            found.append(f"{module.where(line)} writes a problem document ({node.value!r})")
        keys: set[str] = set()
        if isinstance(node, ast.Dict):
            keys = {k.value for k in node.keys if isinstance(k, ast.Constant)}
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id == "dict"
        ):
            keys = {k.arg for k in node.keywords if k.arg}
        if PROBLEM_FIELDS <= keys:
            found.append(
                f"{module.where(line)} builds a problem document (type, title, status, detail)"
            )
    return found


def _at_edge(name: str) -> bool:
    return any(name == edge or name.startswith(edge + ".") for edge in EDGE)


# -- the rules, as functions of a tree, so that a planted tree can show they fail ---------------


def module_cycles(root: Path) -> list[str]:
    modules = discover(root)
    return find_cycles(module_edges(all_imports(modules)))


def subpackage_cycles(root: Path) -> list[str]:
    modules = discover(root)
    return find_cycles(subpackage_edges(all_imports(modules)))


def own_package_imports(root: Path) -> list[str]:
    modules = discover(root)
    with_init = {m.name for m in modules.values() if m.is_package}
    found = []
    for i in all_imports(modules):
        module = modules[i.importer]
        if module.is_package or module.name.startswith(GENERATED):
            continue
        enclosing = {
            p
            for p in with_init
            if module.name.startswith(p + ".") and subpackage_of(p) == subpackage_of(module.name)
        }
        if i.named_from in enclosing:
            found.append(f"{i.where}: {i.importer} imports its own package {i.named_from}")
    return sorted(set(found))


def http_outside_the_edge(root: Path) -> list[str]:
    return [
        found
        for module in discover(root).values()
        if not _at_edge(module.name)
        for found in http_at_module(module)
    ]


def devkit_outside_the_root(root: Path) -> list[str]:
    modules = discover(root)
    return [
        f"{i.where}: {i.importer} imports {i.imported}"
        for i in all_imports(modules)
        if (i.imported == DEVKIT or i.imported.startswith(DEVKIT + "."))
        and i.importer not in COMPOSITION_ROOT
        and not (i.importer == DEVKIT or i.importer.startswith(DEVKIT + "."))
    ]


def root_imported_from_below(root: Path) -> list[str]:
    """Imports of the composition root by anything but the root itself (types included)."""
    return [
        f"{i.where}: {i.importer} imports {i.imported}"
        for i in all_imports(discover(root))
        if i.imported in COMPOSITION_ROOT and i.importer not in COMPOSITION_ROOT
    ]


def _report(what: str, found: list[str]) -> str:
    return f"{what}:\n  " + "\n  ".join(found)


def test_no_module_imports_another_that_imports_it_back() -> None:
    found = module_cycles(ROOT)
    assert not found, _report("import cycles between modules", found)


def test_no_subpackage_imports_another_that_imports_it_back() -> None:
    found = subpackage_cycles(ROOT)
    assert not found, _report("import cycles between subpackages", found)


def test_modules_import_their_siblings_not_their_own_package() -> None:
    found = own_package_imports(ROOT)
    assert not found, _report("modules importing their own package's __init__", found)


def test_http_and_problem_documents_stay_at_the_edge() -> None:
    found = http_outside_the_edge(ROOT)
    assert not found, _report(f"HTTP outside {', '.join(EDGE)}", found)


def test_nothing_below_the_composition_root_imports_it_even_for_a_type() -> None:
    found = root_imported_from_below(ROOT)
    assert not found, _report(f"{sorted(COMPOSITION_ROOT)} imported from below", found)


def test_only_the_composition_root_imports_the_devkit() -> None:
    found = devkit_outside_the_root(ROOT)
    assert not found, _report(f"{DEVKIT} imported outside {sorted(COMPOSITION_ROOT)}", found)


# -- the finders find what is planted -----------------------------------------------------------


def _plant(root: Path, files: Mapping[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


def test_the_cycle_finder_finds_a_planted_cycle_and_names_its_chain() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set(), "e": {"e"}}
    assert strongly_connected(graph) == [["a", "b", "c"], ["e"]]
    assert cycle_through(["a", "b", "c"], graph) == ["a", "b", "c", "a"]
    assert strongly_connected({"a": {"b"}, "b": {"c"}}) == []


def test_a_planted_tree_breaks_every_rule(tmp_path: Path) -> None:
    root = _plant(
        tmp_path,
        {
            "propdev/__init__.py": "",
            "propdev/node.py": "from propdev.devkit import sim\n",
            "propdev/devkit/__init__.py": "",
            "propdev/devkit/sim.py": "from aiohttp import web\n",
            "propdev/http/app.py": (
                "from typing import TYPE_CHECKING\n"
                "if TYPE_CHECKING:\n    from propdev.node import Node\n"
            ),
            "propdev/lo/__init__.py": "from propdev.lo.a import A\n",
            "propdev/lo/a.py": (
                "from typing import TYPE_CHECKING\n"
                "A = 1\n"
                "if TYPE_CHECKING:\n    from propdev.lo.b import B\n"
            ),
            "propdev/lo/b.py": "from propdev.lo import A\nB = 2\n",
            "propdev/lo/c.py": (
                "def f():\n    from propdev.hi import H\n    return H\n"
                "P = {'type': 'x', 'title': 't', 'status': 400, 'detail': 'd'}\n"
            ),
            "propdev/hi/__init__.py": "H = 1\nfrom propdev.lo.c import f\n",
            "propdev/hi/d.py": (
                '"""Answers in problem+json (a docstring: allowed)."""\n'
                "import aiohttp.web\nfrom propdev.devkit.sim import web\n"
                "CT = 'application/problem+json'\n"
            ),
        },
    )
    modules = module_cycles(root)
    assert len(modules) == 2, modules
    assert "propdev.lo.a -> propdev.lo.b (propdev/lo/a.py:4, TYPE_CHECKING)" in modules[1]
    assert "propdev.lo.b -> propdev.lo (propdev/lo/b.py:1)" in modules[1]
    assert "propdev.hi -> propdev.lo.c (propdev/hi/__init__.py:2)" in modules[0]
    assert "propdev.lo.c -> propdev.hi (propdev/lo/c.py:2)" in modules[0]
    assert subpackage_cycles(root) == [
        "cycle among propdev.hi, propdev.lo:\n"
        "    propdev.hi -> propdev.lo (propdev/hi/__init__.py:2)\n"
        "    propdev.lo -> propdev.hi (propdev/lo/c.py:2)"
    ]
    assert own_package_imports(root) == [
        "propdev/lo/b.py:1: propdev.lo.b imports its own package propdev.lo"
    ]
    assert http_outside_the_edge(root) == [
        "propdev/hi/d.py:2 imports aiohttp.web",
        "propdev/hi/d.py:4 writes a problem document ('application/problem+json')",
        "propdev/lo/c.py:4 builds a problem document (type, title, status, detail)",
    ]
    assert devkit_outside_the_root(root) == [
        "propdev/hi/d.py:3: propdev.hi.d imports propdev.devkit.sim"
    ]
    assert root_imported_from_below(root) == [
        "propdev/http/app.py:3: propdev.http.app imports propdev.node"
    ]


@pytest.mark.parametrize("rule", [module_cycles, subpackage_cycles, own_package_imports])
def test_a_clean_tree_passes(tmp_path: Path, rule: object) -> None:
    root = _plant(
        tmp_path,
        {
            "propdev/__init__.py": "",
            "propdev/lo/__init__.py": "from propdev.lo.a import A\n",
            "propdev/lo/a.py": "A = 1\n",
            "propdev/lo/b.py": "from propdev.lo.a import A\n",
            "propdev/hi/__init__.py": "from propdev.lo import A\n",
        },
    )
    assert callable(rule)
    assert rule(root) == []
