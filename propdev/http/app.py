"""``make_app(node)``: the aiohttp front end of one node."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from aiohttp import web

from propdev.http import ws
from propdev.http.integration_log import integration_log_middleware
from propdev.http.keys import NODE, SETTINGS
from propdev.http.limits import WS_CAPS, WebSocketCaps, body_limit_middleware
from propdev.http.middlewares import (
    PRINCIPAL,
    Handler,
    auth_middleware,
    request_context_middleware,
)
from propdev.http.permissions import Permission, requires
from propdev.http.ratelimit import Limiter, LocalLimiter, rate_limit_middleware
from propdev.http.routes import admin, console, docs, health, operator_actions, resident, vehicles
from propdev.http.routes import gateway as utilities_gateway
from propdev.http.routes import manage as management_api
from propdev.http.routes import partner as partner_api
from propdev.http.routes import passes as guest_passes
from propdev.http.routes.ops import routes as ops_routes
from propdev.http.routes.slo import routes as slo_routes
from propdev.http.telemetry import telemetry_middleware

if TYPE_CHECKING:
    from propdev.node import Node

MAX_BODY = 64 * 1024


def make_app(node: Node) -> web.Application:
    """Build the application; the node's lifecycle is the caller's (see ``propdev.node``)."""
    settings = node.settings
    limiter: Limiter = getattr(node, "rate_limiter", None) or LocalLimiter()  # Redis in a cluster
    app = web.Application(
        client_max_size=settings.max_body,
        middlewares=[
            telemetry_middleware(telemetry=node.telemetry),  # spans the access log record too
            request_context_middleware(node_id=settings.node_id),
            integration_log_middleware(),  # partner, gateway, admin: integration_request
            body_limit_middleware(max_body=settings.max_body, body_timeout=settings.body_timeout),
            auth_middleware(
                verifier=node.verifier, external=getattr(node, "external_verifier", None)
            ),
            rate_limit_middleware(rate=settings.rate_limit, limiter=limiter, subject=_subject),
        ],
    )
    app[SETTINGS] = settings
    app[NODE] = node
    app[WS_CAPS] = WebSocketCaps(settings.ws_per_user)
    app.add_routes(health.routes)
    app.add_routes(resident.routes)
    app.add_routes(partner_api.routes)
    app.add_routes(guest_passes.routes)
    app.add_routes(vehicles.routes)
    app.add_routes(utilities_gateway.routes)
    app.add_routes(ws.routes)
    app[ws.LIVE_SOCKETS] = {}
    app.on_shutdown.append(ws.close_sockets)  # a reconnect hint before stopping
    app.add_routes(admin.routes)
    app.add_routes(docs.routes)
    app.add_routes(ops_routes)
    app.add_routes(slo_routes)
    app.add_routes(console.routes)
    app.add_routes(operator_actions.routes)
    management_api.setup(app, node)  # /admin/api/v1: estate, devices, residents, rights
    app.add_routes(public_routes(node.oauth_routes()))
    if node.simulator is not None:
        app.add_routes(public_routes(node.simulator_routes()))
    app.on_response_prepare.append(_security_headers)
    return app


def _subject(request: web.Request) -> str | None:
    principal = request.get(PRINCIPAL)
    return principal.sub if principal is not None else None


async def _security_headers(request: web.Request, response: web.StreamResponse) -> None:
    response.headers.setdefault("Strict-Transport-Security", "max-age=31536000")
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Cache-Control", "no-store")


def public_routes(routes: Iterable[web.RouteDef]) -> list[web.RouteDef]:
    """Routes of another package (OAuth, the simulator's control API), declared public: they
    authenticate their callers themselves (client credentials, login form) or are dev-only."""
    out = []
    for route in routes:
        out.append(web.route(route.method, route.path, _public(route.handler), **route.kwargs))
    return out


def _public(handler: Handler) -> Handler:
    @requires(Permission.PUBLIC)
    async def wrapped(request: web.Request) -> web.StreamResponse:
        return await handler(request)

    wrapped.__name__ = getattr(handler, "__name__", "handler")
    wrapped.__doc__ = getattr(handler, "__doc__", None)
    return wrapped
