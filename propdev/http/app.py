"""``make_app(node)``: the aiohttp front end of one node, and the composition root of HTTP: each
service a route uses is set here once, under its typed key (``propdev.http.keys``)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Protocol

from aiohttp import web

from propdev.http import keys, ws
from propdev.http.admission import Admission, admission_middleware
from propdev.http.client_address import client_address_middleware, networks
from propdev.http.integration_log import integration_log_middleware
from propdev.http.limits import WS_CAPS, WebSocketCaps, body_limit_middleware
from propdev.http.middlewares import (
    PRINCIPAL,
    Handler,
    auth_middleware,
    request_context_middleware,
)
from propdev.http.permissions import Permission, requires
from propdev.http.ratelimit import Limiter, LocalLimiter, rate_limit_middleware
from propdev.http.routes import (
    account,
    admin,
    audit_checkpoint,
    console,
    docs,
    health,
    household,
    manage_partners,
    operator_actions,
    push_tokens,
    resident,
    staff,
    vehicles,
    webapp,
)
from propdev.http.routes import gateway as utilities_gateway
from propdev.http.routes import manage as management_api
from propdev.http.routes import partner as partner_api
from propdev.http.routes import passes as guest_passes
from propdev.http.routes.oauth import oauth_routes
from propdev.http.routes.ops import routes as ops_routes
from propdev.http.routes.slo import routes as slo_routes
from propdev.http.scope import scope_middleware
from propdev.http.services import ClusterNodes, Devices, Drain, EmbeddedNodes, Opener, Readiness
from propdev.http.telemetry import telemetry_middleware

if TYPE_CHECKING:
    from propdev.access import AccessServices
    from propdev.accounts import Accounts
    from propdev.actors import ActorSystem
    from propdev.config import Settings
    from propdev.devices import PartnerEventIngest
    from propdev.housing import UtilitiesService
    from propdev.http.ws_bindings import BoundSockets
    from propdev.management import PartnerRegistry
    from propdev.observability import Telemetry
    from propdev.partners import PartnerGateway
    from propdev.registry import Bus, Cluster
    from propdev.security import ExternalVerifier, OAuthServer, TokenVerifier
    from propdev.storage import Database
    from propdev.storage.audit import AuditLog
    from propdev.storage.commands import Commands
    from propdev.storage.directory import Directory
    from propdev.storage.events import EventStore

MAX_BODY = 64 * 1024


class NodeServices(Devices, Readiness, Drain, Opener, Protocol):
    """What the front end is built from: the node's services and operations (``propdev.node``'s
    ``Node`` satisfies it). Only ``make_app`` sees all of it; routes get single services."""

    @property
    def settings(self) -> Settings: ...

    @property
    def telemetry(self) -> Telemetry: ...

    @property
    def verifier(self) -> TokenVerifier: ...

    @property
    def external_verifier(self) -> ExternalVerifier | None: ...

    @property
    def rate_limiter(self) -> Limiter | None: ...

    @property
    def db(self) -> Database: ...

    @property
    def bus(self) -> Bus: ...

    @property
    def directory(self) -> Directory: ...

    @property
    def access(self) -> AccessServices: ...

    @property
    def accounts(self) -> Accounts: ...

    @property
    def events(self) -> EventStore: ...

    @property
    def ws_bindings(self) -> BoundSockets: ...

    @property
    def commands(self) -> Commands: ...

    @property
    def audit(self) -> AuditLog: ...

    @property
    def system(self) -> ActorSystem: ...

    @property
    def cluster(self) -> Cluster | None: ...

    @property
    def gateways(self) -> Mapping[str, PartnerGateway]: ...

    @property
    def utilities(self) -> UtilitiesService: ...

    @property
    def ingest(self) -> PartnerEventIngest: ...

    @property
    def simulator(self) -> object | None: ...

    def webhook_secrets(self, partner_id: str) -> list[str]: ...

    @property
    def partners(self) -> PartnerRegistry: ...

    @property
    def oauth(self) -> OAuthServer: ...

    def simulator_routes(self) -> list[web.RouteDef]: ...


def make_app(node: NodeServices) -> web.Application:
    """Build the application; the node's lifecycle is the caller's (see ``propdev.node``)."""
    settings = node.settings
    limiter: Limiter = node.rate_limiter or LocalLimiter()  # Redis in a cluster
    app = web.Application(
        client_max_size=settings.max_body,
        middlewares=[
            # First of all: request.remote is the client's address for everything below.
            client_address_middleware(trusted=networks(settings.trusted_proxies)),
            telemetry_middleware(telemetry=node.telemetry),  # spans the access log record too
            request_context_middleware(node_id=settings.node_id),
            integration_log_middleware(),  # partner, gateway, admin: integration_request
            body_limit_middleware(max_body=settings.max_body, body_timeout=settings.body_timeout),
            # Past the node's capacity: 503 + Retry-After before auth and the handler; after the
            # body is read, so that slow bodies (bounded by their deadline) hold no slot.
            admission_middleware(admission=_admission(settings), on_shed=_shed_counter(node)),
            auth_middleware(verifier=node.verifier, external=node.external_verifier),
            rate_limit_middleware(rate=settings.rate_limit, limiter=limiter, subject=_subject),
            scope_middleware(),  # staff routes: role may (403), resource in scope (404)
        ],
    )
    _set_services(app, node)
    app.add_routes(health.routes)
    app.add_routes(ops_routes)  # /metrics
    if settings.gateway:
        _public_api(app, node)
    app.on_response_prepare.append(_security_headers)
    return app


def _public_api(app: web.Application, node: NodeServices) -> None:
    """Everything but health and metrics: served by a ``gateway`` node only (a node with only
    the ``devices`` role hosts device actors and answers its probes and scrapers)."""
    settings = node.settings
    app[WS_CAPS] = WebSocketCaps(settings.ws_per_user)
    app.add_routes(resident.routes)
    app.add_routes(partner_api.routes)
    app.add_routes(guest_passes.routes)
    app.add_routes(vehicles.routes)
    app.add_routes(account.routes)
    app.add_routes(push_tokens.routes)
    app.add_routes(household.routes)  # /api/v1/household/members
    app.add_routes(utilities_gateway.routes)
    app.add_routes(ws.routes)
    app[ws.LIVE_SOCKETS] = {}
    app.on_shutdown.append(ws.close_sockets)  # a reconnect hint before stopping
    app.add_routes(admin.routes)
    app.add_routes(audit_checkpoint.routes)
    app.add_routes(docs.routes)
    app.add_routes(slo_routes)
    app.add_routes(console.routes)
    app.add_routes(webapp.routes)  # /app/: the resident web app
    app.add_routes(operator_actions.routes)
    app.add_routes(staff.routes)  # /admin/api/v1/operators
    management_api.setup(  # /admin/api/v1: estate, devices, residents, rights
        app,
        db=node.db,
        bus=node.bus,
        verifier=node.verifier,
        revocations=node.cluster.revocations if node.cluster is not None else None,
        token_ttl=settings.access_token_ttl,
        activation_ttl=settings.activation_code_ttl,
        gateways=node.gateways,
        system=node.system,
        end_grant=_end_grant(node.accounts),
    )
    app.add_routes(manage_partners.routes)  # /admin/api/v1/partners: partners as data
    app.add_routes(public_routes(oauth_routes(node.oauth)))
    app.add_routes(public_routes(node.simulator_routes()))  # embedded, on loopback only


def _set_services(app: web.Application, node: NodeServices) -> None:
    """Each service under its key, once."""
    settings = node.settings
    app[keys.NODE_ID] = settings.node_id
    app[keys.PUBLIC_URL] = settings.public_url
    app[keys.PKI_DIR] = settings.pki_dir
    app[keys.DATABASE] = node.db
    app[keys.DIRECTORY] = node.directory
    app[keys.EVENTS] = node.events
    app[keys.WS_BINDINGS] = node.ws_bindings
    app[keys.COMMANDS] = node.commands
    app[keys.AUDIT] = node.audit
    app[keys.PASSES] = node.access.passes
    app[keys.VEHICLES] = node.access.vehicles
    app[keys.ACCOUNTS] = node.accounts
    app[keys.PUSH_TOKENS] = node.access.push_tokens
    app[keys.PUSH_PREFERENCES] = node.access.push_preferences
    app[keys.OPENING] = node.access.opening
    app[keys.ACTOR_SYSTEM] = node.system
    app[keys.DEVICES] = node
    app[keys.BUS] = node.bus
    app[keys.NODES] = (
        ClusterNodes(node.cluster) if node.cluster is not None else EmbeddedNodes(settings.node_id)
    )
    app[keys.READINESS] = node
    app[keys.DRAIN] = node
    app[keys.PARTNER_GATEWAYS] = node.gateways  # filled at start: the node's own mapping
    app[keys.EVENT_INGEST] = node.ingest
    app[keys.WEBHOOK_SECRETS] = node.webhook_secrets
    app[keys.PARTNER_REGISTRY] = node.partners
    app[keys.UTILITIES] = node.utilities
    app[keys.METRICS] = node.telemetry.metrics
    app[keys.METRICS_ALLOW] = networks(settings.metrics_allow)
    app[keys.SLO] = node.telemetry.slo
    app[keys.OPENER] = node


def _end_grant(accounts: Accounts) -> Callable[[str, float], Awaitable[None]]:
    """Revoke a grant through the node's revocations (set on ``accounts`` at start)."""

    async def end(sid: str, until: float) -> None:
        if accounts.on_grant_revoked is not None:
            await accounts.on_grant_revoked(sid, until)

    return end


def _admission(settings: Settings) -> Admission | None:
    if settings.max_inflight <= 0:
        return None
    return Admission(
        limit=settings.max_inflight, queue=settings.inflight_queue, wait=settings.inflight_wait
    )


def _shed_counter(node: NodeServices) -> Callable[[str, str], None]:
    shed = node.telemetry.metrics.shed
    return lambda budget, reason: shed.labels(budget, reason).inc()


def _subject(request: web.Request) -> str | None:
    principal = request.get(PRINCIPAL)
    return principal.sub if principal is not None else None


SERVER_HEADER = "propdev"
"""The ``Server`` header of every response: no product versions (aiohttp's default names
Python's and its own)."""


async def _security_headers(request: web.Request, response: web.StreamResponse) -> None:
    response.headers["Server"] = SERVER_HEADER
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
