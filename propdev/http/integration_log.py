"""One ``integration_request`` record per call to an integration API.

The integration APIs are the partners' (``/partner/v1/*``), the utilities gateway's
(``/gateway/v1/*``) and the operators' (``/admin/*``); the gRPC partner service logs the same
record through ``log_integration_request`` (``propdev.grpc.call_log``: one per unary call, two
per stream, with a few gRPC fields more). A record says:

- who: ``subject`` (the token's subject: a partner's client id, an operator's or resident's
  user id, an external issuer's ``ext:...`` subject), ``client_id``, ``partner`` (for partner
  callers) and ``cert_thumbprint`` (``x5t#S256`` of the TLS client certificate, if any);
- what: ``api``, ``method``, ``route`` (the route template, never the raw path);
- from where: ``client_ip``;
- outcome: ``status``, ``outcome`` (``ok`` < 400, ``rejected`` 4xx, ``failed`` 5xx),
  ``latency_ms``, ``bytes_in``/``bytes_out``;
- ``trace_id``/``span_id`` and ``request_id`` come from the logging context.

Never headers, query strings, bodies, tokens or personal data: only the fields above, all
ids. The middleware sits inside the request-context middleware (which turns errors into
answers) and sees errors as exceptions: it records their status and lets them through.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping

import structlog
from aiohttp import web
from aiohttp.typedefs import Middleware

from propdev.http.middlewares import PRINCIPAL
from propdev.http.problems import problem_for
from propdev.http.tls import client_certificate_der
from propdev.security import certificate_thumbprint

log = structlog.get_logger()

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

INTEGRATION_APIS = (("/partner/v1/", "partner"), ("/gateway/v1/", "gateway"), ("/admin/", "admin"))


def integration_api(path: str) -> str | None:
    """The integration API ``path`` belongs to, or None."""
    if path == "/admin":
        return "admin"
    for prefix, name in INTEGRATION_APIS:
        if path.startswith(prefix):
            return name
    return None


def outcome_of(status: int) -> str:
    return "ok" if status < 400 else "rejected" if status < 500 else "failed"


def log_integration_request(
    *,
    api: str,
    method: str,
    route: str,
    status: int,
    latency_s: float,
    client_ip: str | None,
    subject: str | None = None,
    client_id: str | None = None,
    partner: str | None = None,
    cert_thumbprint: str | None = None,
    bytes_in: int | None = None,
    bytes_out: int | None = None,
    grpc: Mapping[str, object] | None = None,
) -> None:
    """Write one ``integration_request`` record (HTTP middleware and gRPC alike); ``grpc``
    adds a gRPC call's own fields (``propdev.grpc.call_log``)."""
    log.info(
        "integration_request",
        api=api,
        method=method,
        route=route,
        status=status,
        outcome=outcome_of(status),
        latency_ms=round(latency_s * 1000, 2),
        client_ip=client_ip,
        subject=subject,
        client_id=client_id or None,
        partner=partner,
        cert_thumbprint=cert_thumbprint,
        bytes_in=bytes_in,
        bytes_out=bytes_out,
        **(grpc or {}),
    )


def integration_log_middleware() -> Middleware:
    """The ``integration_request`` record for every request to an integration API."""

    @web.middleware
    async def impl(request: web.Request, handler: Handler) -> web.StreamResponse:
        api = integration_api(request.path)
        if api is None:
            return await handler(request)
        started = time.perf_counter()
        status = 500
        bytes_out: int | None = None
        try:
            response = await handler(request)
            status = response.status
            bytes_out = response.body_length if response.prepared else _body_size(response)
            return response
        except web.HTTPException as exc:
            status = exc.status
            raise
        except Exception as exc:  # answered by the problems middleware, outside this one
            problem = problem_for(exc)
            status = problem.status if problem is not None else 500
            raise
        finally:
            _record(request, api, status, time.perf_counter() - started, bytes_out)

    return impl


def _body_size(response: web.StreamResponse) -> int | None:
    body = getattr(response, "body", None)
    return len(body) if isinstance(body, bytes | bytearray) else None


def _record(
    request: web.Request, api: str, status: int, latency_s: float, bytes_out: int | None
) -> None:
    caller = request.get(PRINCIPAL)
    der = client_certificate_der(request)
    resource = request.match_info.route.resource
    is_partner = caller is not None and "partner" in caller.roles
    log_integration_request(
        api=api,
        method=request.method if request.method.isalpha() else "other",
        route=resource.canonical if resource is not None else "unmatched",
        status=status,
        latency_s=latency_s,
        client_ip=request.remote,
        subject=caller.sub if caller is not None else None,
        client_id=caller.client_id if caller is not None else None,
        partner=caller.client_id if is_partner and caller is not None else None,
        cert_thumbprint=certificate_thumbprint(der) if der is not None else None,
        bytes_in=request.content_length,
        bytes_out=bytes_out,
    )
