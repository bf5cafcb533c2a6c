"""The dev kit stays apart: production packages never import ``propdev.devkit``; the
composition root (``propdev.node``, ``propdev.cli``) does so only inside functions."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
PROPDEV = ROOT / "propdev"
COMPOSITION_ROOT = {"node.py", "cli.py"}


def devkit_imports(tree: ast.AST) -> list[ast.stmt]:
    found: list[ast.stmt] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("propdev.devkit"):
            found.append(node)
        elif isinstance(node, ast.Import) and any(
            a.name.startswith("propdev.devkit") for a in node.names
        ):
            found.append(node)
    return found


def module_level_imports(tree: ast.Module) -> list[ast.stmt]:
    """Imports run when the module loads: top level, and in top-level ``if``/``try`` blocks
    other than ``if TYPE_CHECKING:``."""
    out: list[ast.stmt] = []
    pending: list[ast.stmt] = list(tree.body)
    while pending:
        stmt = pending.pop()
        if isinstance(stmt, ast.Import | ast.ImportFrom):
            out.append(stmt)
        elif isinstance(stmt, ast.If):
            if not (isinstance(stmt.test, ast.Name) and stmt.test.id == "TYPE_CHECKING"):
                pending += [*stmt.body, *stmt.orelse]
        elif isinstance(stmt, ast.Try):
            pending += [*stmt.body, *stmt.orelse, *stmt.finalbody]
            for handler in stmt.handlers:
                pending += handler.body
    return out


def test_production_packages_do_not_import_the_devkit() -> None:
    offenders = []
    for path in PROPDEV.rglob("*.py"):
        relative = path.relative_to(PROPDEV)
        if relative.parts[0] == "devkit" or str(relative) in COMPOSITION_ROOT:
            continue
        if devkit_imports(ast.parse(path.read_text())):
            offenders.append(str(relative))
    assert offenders == []


def test_the_composition_root_imports_it_only_lazily() -> None:
    for name in sorted(COMPOSITION_ROOT):
        tree = ast.parse((PROPDEV / name).read_text())
        eager = [s for s in module_level_imports(tree) if s in devkit_imports(tree)]
        assert eager == [], name
        assert devkit_imports(tree), f"{name} no longer needs the devkit: update this test"


def test_the_boundary_check_sees_an_eager_import() -> None:
    tree = ast.parse("from propdev.devkit import seed_demo\ndef f():\n    import propdev.devkit\n")
    assert len(devkit_imports(tree)) == 2
    assert len([s for s in module_level_imports(tree) if s in devkit_imports(tree)]) == 1


_PROBE = """
import json, sys
from propdev.config import Settings
from propdev.node import Node
from propdev.http.app import make_app
from propdev.pki import ensure_ca
data = sys.argv[1]
settings = Settings.from_env({
    "PROPDEV_DATA_DIR": data,
    "PROPDEV_PARTNER_URL": "https://127.0.0.1:9443",
    "PROPDEV_UTILITIES_URL": "https://127.0.0.1:9444",
})
ensure_ca(settings.pki_dir)
node = Node(settings)
make_app(node)
print(json.dumps({
    "devkit": sorted(m for m in sys.modules if m.startswith("propdev.devkit")),
    "simulator": node.simulator is not None,
}))
"""


def test_a_node_with_remote_vendors_never_loads_the_devkit(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, str(tmp_path)],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
        cwd=ROOT,
    )
    assert json.loads(done.stdout.splitlines()[-1]) == {"devkit": [], "simulator": False}
