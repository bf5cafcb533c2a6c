"""The middleware stack, outermost first: request context (id, log, problems) -> auth -> rate limit.

Each is made by a keyword-only factory returning ``impl(request, handler)``; the rate limit's
is ``propdev.http.ratelimit.rate_limit_middleware``.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

import structlog
from aiohttp import web
from aiohttp.typedefs import Middleware

from propdev.http.client_address import VIA
from propdev.http.errors import ForbiddenError, ProblemError, UnauthorizedError
from propdev.http.permissions import Permission, permission_of
from propdev.http.principal import Principal
from propdev.http.problems import problem_for
from propdev.http.tls import client_certificate_der
from propdev.ids import new_hex_id
from propdev.security import (
    Claims,
    ExternalVerifier,
    InvalidTokenError,
    TokenVerifier,
    check_certificate_binding,
)
from propdev.storage import StoreUnavailableError

log = structlog.get_logger()

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

PRINCIPAL: web.RequestKey[Principal] = web.RequestKey("principal")
REQUEST_ID: web.RequestKey[str] = web.RequestKey("request_id")


def problem_response(error: ProblemError) -> web.Response:
    return web.json_response(
        error.body(),
        status=error.status,
        content_type="application/problem+json",
        headers=error.headers,
    )


def _http_problem(exc: web.HTTPException) -> web.Response:
    body = {
        "type": "about:blank",
        "title": exc.reason,
        "status": exc.status,
        "detail": exc.text if exc.text and not exc.text.startswith(str(exc.status)) else exc.reason,
    }
    headers = {k: v for k, v in exc.headers.items() if k.lower() in {"allow", "retry-after"}}
    return web.json_response(
        body, status=exc.status, content_type="application/problem+json", headers=headers
    )


def valid_request_id(value: str) -> bool:
    """True when a caller's request id can be kept: 1 to 128 printable characters."""
    return 0 < len(value) <= 128 and value.isprintable()


def request_context_middleware(*, node_id: str) -> Middleware:
    """Request id, bound log context, one access-log record, and problem+json for every error
    (a domain error's from ``propdev.http.problems``)."""
    bind, reset = structlog.contextvars.bind_contextvars, structlog.contextvars.reset_contextvars

    @web.middleware
    async def impl(request: web.Request, handler: Handler) -> web.StreamResponse:
        request_id = request.headers.get("X-Request-Id", "")
        if not valid_request_id(request_id):
            request_id = new_hex_id()  # pooled: no system call per request
        request[REQUEST_ID] = request_id
        started = time.perf_counter()
        status = 500
        bound = bind(request_id=request_id, node=node_id)  # reset below: values before us
        try:
            try:
                response = await handler(request)
                status = response.status
            except ProblemError as exc:
                response = problem_response(exc)
                status = exc.status
            except web.HTTPException as exc:
                if exc.status < 400:
                    raise
                response = _http_problem(exc)
                status = exc.status
            except Exception as exc:  # a domain error (the table of http.problems) or a bug
                problem = problem_for(exc)
                if problem is None:
                    log.exception("request_failed", method=request.method, path=request.path)
                    response = problem_response(ProblemError("An internal error occurred."))
                else:
                    if isinstance(exc, StoreUnavailableError):  # a dependency down: not a bug
                        error = str(exc).splitlines()[0]
                        log.warning("store_unavailable", path=request.path, error=error)
                    response = problem_response(problem)
                    status = problem.status
            finally:
                principal = request.get(PRINCIPAL)
                via = request.get(VIA)  # the trusted proxy, when the client is behind one
                log.info(
                    "http_request",
                    method=request.method,
                    route=_route_name(request),
                    status=status,
                    outcome="ok" if status < 400 else "rejected" if status < 500 else "failed",
                    latency_ms=round((time.perf_counter() - started) * 1000, 2),
                    client=request.remote,  # the client's address (propdev.http.client_address)
                    sub=principal.sub if principal else None,
                    **({"via": via} if via else {}),
                )
            if not response.prepared:
                response.headers["X-Request-Id"] = request_id
            return response
        finally:
            reset(**bound)

    return impl


def _route_name(request: web.Request) -> str:
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "unmatched"


def bearer_token(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    protocols = [p.strip() for p in request.headers.get("Sec-WebSocket-Protocol", "").split(",")]
    if len(protocols) >= 2 and protocols[0].lower() == "bearer" and protocols[1]:
        return protocols[1]
    return None


def auth_middleware(
    *, verifier: TokenVerifier, external: ExternalVerifier | None = None
) -> Middleware:
    """Checks the permission the route declared; undeclared routes are refused.

    A certificate-bound token (partners) must come over a connection with its certificate.
    A token naming the external OIDC issuer (``external``, when configured) is verified by it.
    """

    principals = PrincipalCache()

    @web.middleware
    async def impl(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.match_info.http_exception is not None:
            return await handler(request)  # 404/405: nothing to protect
        permission = permission_of(request.match_info.handler)
        if permission is None:
            log.error("route_without_permission", path=request.path)
            raise ForbiddenError("This route declares no permission.")
        if permission is Permission.PUBLIC:
            return await handler(request)
        token = bearer_token(request)
        if token is None:
            raise UnauthorizedError(
                "An access token is required.", headers={"WWW-Authenticate": "Bearer"}
            )
        try:
            if external is not None and external.claims_issuer(token):
                claims = await external.verify(token)
            else:
                claims = verifier.verify(token)
            if claims.cnf is not None:
                check_certificate_binding(claims, client_certificate_der(request))
        except InvalidTokenError as exc:
            raise UnauthorizedError(
                "The access token is invalid or expired.",
                headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
            ) from exc
        principal = principals.of(token, claims)
        del token  # this frame lives as long as a WebSocket: it keeps no copy of the token
        request[PRINCIPAL] = principal
        if not _allowed(permission, principal):
            raise ForbiddenError(
                "Your token does not allow this call.",
                headers={"WWW-Authenticate": 'Bearer error="insufficient_scope"'},
            )
        return await handler(request)

    return impl


class PrincipalCache:
    """The ``Principal`` built from a token's claims, kept with the token (at most ``size``).

    Only a cache of the building: the verifier still checks the token on every request
    (expiry, revocation), and an entry is used only while the verifier returns the very
    claims it was built from.
    """

    __slots__ = ("_by_token", "size")

    def __init__(self, size: int = 10_000) -> None:
        self.size = size
        self._by_token: dict[str, tuple[Claims, Principal]] = {}

    def of(self, token: str, claims: Claims) -> Principal:
        kept = self._by_token.get(token)
        if kept is not None and kept[0] is claims:
            return kept[1]
        principal = Principal.from_claims(claims.raw)
        if len(self._by_token) >= self.size:
            self._by_token.clear()  # bounded; refilled by the tokens seen next
        self._by_token[token] = (claims, principal)
        return principal


def _allowed(permission: Permission, principal: Principal) -> bool:
    if permission is Permission.AUTHENTICATED:
        return True
    if permission is Permission.RESIDENT:
        return "resident" in principal.roles
    if permission is Permission.OPERATOR:
        return principal.is_operator
    if permission is Permission.PARTNER:
        return "partner" in principal.roles
    return False


def principal(request: web.Request) -> Principal:
    """The caller of an authenticated route."""
    found: Principal | None = request.get(PRINCIPAL)
    if found is None:
        raise UnauthorizedError("An access token is required.")
    return found
