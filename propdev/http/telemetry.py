"""The outermost middleware: a server span per request, request metrics, SLO events.

The HTTP side of ``propdev.observability``'s ``Telemetry``: it reads the request (route
template, method, status) and hands plain values to the metrics, the tracer and the SLOs.

It wraps the request-context middleware, so that middleware's ``http_request`` record is
written inside the span (and carries its ids) and every error is already an answer here.
A WebSocket session is counted as a connection, not as a (very long) request latency.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.typedefs import Middleware

from propdev.observability import Telemetry, bounded_method, mark_error

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def route_template(request: web.Request) -> str:
    """The matched route's template (``/api/v1/access-points/{id}/open``), or ``unmatched``."""
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "unmatched"


def telemetry_middleware(*, telemetry: Telemetry) -> Middleware:
    metrics = telemetry.metrics
    tracing = telemetry.tracing
    slo = telemetry.slo
    in_flight = metrics.http_in_flight
    perf_counter = time.perf_counter

    @web.middleware
    async def impl(request: web.Request, handler: Handler) -> web.StreamResponse:
        route = route_template(request)
        method = bounded_method(request.method)
        websocket = request.headers.get("Upgrade", "").lower() == "websocket"
        status = 500
        started = perf_counter()
        with tracing.server_span(
            f"{method} {route}",
            request.headers.get("traceparent"),
            {"http.request.method": method, "http.route": route},
        ) as span:
            gauge = metrics.websocket_connections if websocket else in_flight
            gauge.inc()
            if websocket:
                metrics.websocket_opened.inc()
            try:
                response = await handler(request)
                status = response.status
                return response
            except web.HTTPException as exc:  # redirects: errors are answers by now
                status = exc.status
                raise
            finally:
                gauge.dec()
                seconds = perf_counter() - started
                metrics.observe_request(method, route, status, -1.0 if websocket else seconds)
                if not websocket:
                    slo.record(method, route, status, seconds)
                if status == 429:
                    metrics.rate_limited.labels(route).inc()
                if span.is_recording():
                    span.set_attribute("http.response.status_code", status)
                    if status >= 500:
                        mark_error(span, f"HTTP {status}")

    return impl
