"""The composition root: ``make_app`` sets every key of ``propdev.http.keys`` to the node's own
service, and the http package does not depend on the node module."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from aiohttp import web

from propdev.config import Settings
from propdev.http import keys
from propdev.http.app import make_app
from propdev.node import Node

HTTP = Path(keys.__file__).parent


@pytest.fixture
def node(tmp_path: Path) -> Node:
    return Node(Settings.from_env({"PROPDEV_DATA_DIR": str(tmp_path)}))


def declared_keys() -> dict[str, web.AppKey[object]]:
    return {name: v for name, v in vars(keys).items() if isinstance(v, web.AppKey)}


def test_make_app_sets_every_declared_key(node: Node) -> None:
    app = make_app(node)

    missing = [name for name, key in declared_keys().items() if key not in app]
    assert missing == []
    assert len(declared_keys()) > 20


def test_the_keys_hold_the_nodes_own_services_not_copies(node: Node) -> None:
    app = make_app(node)

    assert app[keys.DATABASE] is node.db
    assert app[keys.EVENTS] is node.events
    assert app[keys.PASSES] is node.access.passes
    assert app[keys.OPENING] is node.access.opening and app[keys.OPENER] is node
    assert app[keys.ACTOR_SYSTEM] is node.system
    assert app[keys.PARTNER_GATEWAYS] is node.gateways  # filled at start, seen by the routes
    assert app[keys.DEVICES] is node and app[keys.READINESS] is node
    assert app[keys.METRICS] is node.telemetry.metrics
    assert app[keys.NODE_ID] == node.settings.node_id
    assert app[keys.NODES].snapshot()["nodes"][0]["id"] == node.settings.node_id


def imports_of(path: Path) -> set[str]:
    found: set[str] = set()
    for stmt in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(stmt, ast.ImportFrom) and stmt.module:
            found.add(stmt.module)
            found.update(f"{stmt.module}.{alias.name}" for alias in stmt.names)
        elif isinstance(stmt, ast.Import):
            found.update(alias.name for alias in stmt.names)
    return found


def test_no_module_of_the_http_package_imports_the_node() -> None:
    offenders = [
        str(path.relative_to(HTTP))
        for path in sorted(HTTP.rglob("*.py"))
        if any(m == "propdev.node" or m.startswith("propdev.node.") for m in imports_of(path))
    ]
    assert offenders == []


def test_no_route_reaches_for_the_node_through_the_application() -> None:
    readers = sorted(
        str(path.relative_to(HTTP))
        for path in HTTP.rglob("*.py")
        if any(
            m in ("propdev.http.keys.NODE", "propdev.http.keys.SETTINGS") for m in imports_of(path)
        )
    )
    assert readers == []
    from propdev.http import keys

    assert not hasattr(keys, "NODE") and not hasattr(keys, "SETTINGS")
