"""The security package's shape: no web framework, no import of its own ``__init__``, no cycles.

Read from the source (``ast``), so a ``TYPE_CHECKING`` import counts as much as any other.
"""

from __future__ import annotations

import ast
from pathlib import Path

import propdev.security

PACKAGE = Path(propdev.security.__file__).parent


def _imports() -> dict[str, set[str]]:
    """Each module of the package (by its name) and the modules it imports."""
    found: dict[str, set[str]] = {}
    for path in sorted(PACKAGE.glob("*.py")):
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text("utf-8"))):
            if isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module:
                names.add(node.module)
                names.update(f"{node.module}.{alias.name}" for alias in node.names)
        found[path.stem] = names
    return found


def test_no_security_module_imports_aiohttp_web() -> None:
    offenders = {
        module
        for module, names in _imports().items()
        if any(n == "aiohttp.web" or n.startswith("aiohttp.web.") for n in names)
    }
    assert offenders == set()


def test_security_modules_import_siblings_not_the_package_init() -> None:
    offenders = {
        module
        for module, names in _imports().items()
        if module != "__init__" and "propdev.security" in names
    }
    assert offenders == set()


def test_security_modules_import_one_another_without_cycles() -> None:
    prefix = "propdev.security."
    graph = {
        module: {n[len(prefix) :].split(".")[0] for n in names if n.startswith(prefix)}
        for module, names in _imports().items()
        if module != "__init__"
    }
    graph = {m: {d for d in deps if d in graph and d != m} for m, deps in graph.items()}

    def cycle_from(start: str) -> list[str] | None:
        stack = [(start, [start])]
        while stack:
            module, path = stack.pop()
            for dep in graph[module]:
                if dep == start:
                    return [*path, dep]
                if dep not in path:
                    stack.append((dep, [*path, dep]))
        return None

    cycles = [c for m in graph if (c := cycle_from(m)) is not None]
    assert cycles == []
