"""Every route declares who may call it (a route without a declaration fails here)."""

from __future__ import annotations

from pathlib import Path

import pytest

from propdev.config import Settings
from propdev.http.app import make_app
from propdev.http.permissions import Permission, permission_of
from propdev.node import Node


@pytest.fixture
def app_routes(tmp_path: Path) -> list[tuple[str, str, Permission | None]]:
    node = Node(Settings.from_env({"PROPDEV_DATA_DIR": str(tmp_path)}))
    app = make_app(node)
    found = []
    for route in app.router.routes():
        info = route.resource.canonical if route.resource is not None else "?"
        found.append((route.method, info, permission_of(route.handler)))
    return found


def test_every_route_declares_a_permission(
    app_routes: list[tuple[str, str, Permission | None]],
) -> None:
    undeclared = [(m, p) for m, p, perm in app_routes if perm is None]
    assert undeclared == []
    assert len(app_routes) > 15


def test_the_admin_api_is_for_operators_only(
    app_routes: list[tuple[str, str, Permission | None]],
) -> None:
    admin = {perm for _, path, perm in app_routes if path.startswith("/admin/api/")}
    assert admin == {Permission.OPERATOR}


# Where a person proves who they are without a token: a reset code, an activation code.
PUBLIC_ACCOUNT_ROUTES = {
    ("POST", "/api/v1/password-reset"),
    ("POST", "/api/v1/password-reset/confirm"),
    ("POST", "/api/v1/activation"),
}


def test_the_resident_api_is_never_public_but_for_codes_that_stand_for_a_password(
    app_routes: list[tuple[str, str, Permission | None]],
) -> None:
    api = {(method, path, perm) for method, path, perm in app_routes if path.startswith("/api/v1/")}
    public = {(method, path) for method, path, perm in api if perm is Permission.PUBLIC}
    assert public == PUBLIC_ACCOUNT_ROUTES
    assert len(api) > len(public)
