"""For route tests: a bare application with only the routes and keys under test, whose caller
is given (no tokens), and the problem+json rendering of the real stack."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient

from propdev.http.middlewares import PRINCIPAL, Handler, request_context_middleware
from propdev.http.principal import Principal
from propdev.http.scope import SCOPE
from propdev.staff import Scope, staff_roles

ClientFactory = Callable[[web.Application], Awaitable[TestClient[web.Request, web.Application]]]


def caller(sub: str, *roles: str) -> Principal:
    """A caller with ``roles``; an operator's second factor (``otp``) comes with them."""
    return Principal(
        sub=sub,
        client_id="test",
        roles=frozenset(roles),
        amr=frozenset({"pwd", "otp"}),
        scope=frozenset(),
        claims={"sub": sub, "preferred_username": sub},
    )


def route_app(
    routes: Iterable[web.AbstractRouteDef], *, calling: Principal | None = None
) -> web.Application:
    """The routes alone; the caller's keys are the test's to set."""

    @web.middleware
    async def as_caller(request: web.Request, handler: Handler) -> web.StreamResponse:
        if calling is not None:
            request[PRINCIPAL] = calling
            roles = staff_roles(calling.roles)
            if roles:  # staff: organisation-wide (scopes are tested against the real stack)
                request[SCOPE] = Scope(calling.sub, roles, None)
        return await handler(request)

    app = web.Application(middlewares=[request_context_middleware(node_id="n-test"), as_caller])
    app.add_routes(routes)
    return app


class TwoNodes:
    """The nodes of a two-node cluster as ``n-1`` sees them: ``n-2`` is its one peer."""

    def snapshot(self) -> dict[str, Any]:
        return {"self": "n-1", "nodes": [{"id": "n-1"}, {"id": "n-2"}], "unowned": []}

    def peer(self, node_id: str) -> dict[str, Any] | None:
        return {"url": "https://10.0.0.2:8443"} if node_id == "n-2" else None
