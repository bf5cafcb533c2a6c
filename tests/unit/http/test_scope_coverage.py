"""Every staff route declares its scope rule, and every gRPC method its callers: a route or a
method added without one fails here."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from aiohttp import web

import propdev.grpc.partner_pb2 as partner_pb2
from propdev.config import Settings
from propdev.grpc.auth import METHOD_CALLERS, PARTNER
from propdev.http.app import make_app
from propdev.http.permissions import Permission, permission_of, requires
from propdev.http.scope import LISTED, ORGANISATION_ONLY, OWN, At, Source, rule_of, scoped
from propdev.node import Node
from propdev.staff import Action, Kind


def unscoped(app: web.Application) -> list[tuple[str, str]]:
    """The staff routes of ``app`` (``/admin/api/`` or ``Permission.OPERATOR``) without a
    scope rule."""
    missing = []
    for route in app.router.routes():
        path = route.resource.canonical if route.resource is not None else "?"
        staff = path.startswith("/admin/api/") or permission_of(route.handler) is (
            Permission.OPERATOR
        )
        if staff and rule_of(route.handler) is None:
            missing.append((route.method, path))
    return missing


@pytest.fixture
def app(tmp_path: Path) -> web.Application:
    return make_app(Node(Settings.from_env({"PROPDEV_DATA_DIR": str(tmp_path)})))


def test_every_admin_route_declares_a_scope_rule(app: web.Application) -> None:
    admin = [r for r in app.router.routes() if r.resource and "/admin/api/" in r.resource.canonical]
    assert len(admin) > 40
    assert unscoped(app) == []


def test_a_route_added_without_a_scope_rule_is_found() -> None:
    routes = web.RouteTableDef()

    @routes.get("/admin/api/v1/declared")
    @scoped(Action.ESTATE_READ, LISTED)
    async def declared(request: web.Request) -> web.Response:
        return web.Response()

    @routes.get("/admin/api/v1/forgotten")
    @requires(Permission.OPERATOR)
    async def forgotten(request: web.Request) -> web.Response:
        return web.Response()

    toy = web.Application()
    toy.add_routes(routes)
    assert {m for m, p in unscoped(toy) if p == "/admin/api/v1/forgotten"} == {"GET", "HEAD"}
    assert all(p == "/admin/api/v1/forgotten" for _, p in unscoped(toy))


def test_each_rule_names_path_fields_that_the_path_has(app: web.Application) -> None:
    wrong = []
    for route in app.router.routes():
        rule = rule_of(route.handler)
        if rule is None or route.resource is None:
            continue
        for where in rule.where:
            assert isinstance(where, At) or where in (LISTED, ORGANISATION_ONLY, OWN)
            path = route.resource.canonical
            if isinstance(where, At) and where.source is Source.PATH:
                if "{" + where.field + "}" not in path:
                    wrong.append((route.method, path, where.field))
    assert wrong == []


def test_a_route_naming_a_resource_by_id_checks_where_it_is(app: web.Application) -> None:
    """A path with an id is about one resource: its rule must say which (or that the route is
    the organisation's, or that the resource is the caller's own)."""
    loose = []
    for route in app.router.routes():
        rule = rule_of(route.handler)
        path = route.resource.canonical if route.resource is not None else ""
        if rule is None or not re.search(r"\{[a-z_]+\}", path):
            continue
        if any(isinstance(w, At) for w in rule.where):
            continue
        if ORGANISATION_ONLY not in rule.where and OWN not in rule.where:
            loose.append((route.method, path))
    assert loose == []


def test_the_staff_routes_are_there_with_their_rules(app: web.Application) -> None:
    rules = {
        (r.method, r.resource.canonical): rule_of(r.handler)
        for r in app.router.routes()
        if r.resource is not None
    }
    disable = rules[("DELETE", "/admin/api/v1/operators/{id}")]
    assert disable is not None and disable.action is Action.STAFF_MANAGE
    assert disable.where == (At(Kind.STAFF),)
    drain = rules[("POST", "/admin/api/v1/nodes/{node_id}/drain")]
    assert drain is not None and drain.where == (ORGANISATION_ONLY,)
    forget = rules[("DELETE", "/admin/api/v1/me/push-tokens/{id}")]
    assert forget is not None and (forget.action, forget.where) == (Action.SELF, (OWN,))


def test_every_grpc_method_declares_its_callers() -> None:
    service = partner_pb2.DESCRIPTOR.services_by_name["PartnerGateway"]
    methods = {m.name for m in service.methods}
    assert methods == set(METHOD_CALLERS)
    assert set(METHOD_CALLERS.values()) == {PARTNER}
