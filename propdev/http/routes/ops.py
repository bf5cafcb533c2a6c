"""``GET /metrics``: the node's Prometheus metrics in the text exposition format.

Public (no token), like ``/healthz``: Prometheus scrapes it without OAuth, and it carries no
personal data or ids, only bounded labels (route templates, partners, actor kinds). Deployments
that must not show it to the internet block ``/metrics`` at the load balancer and let
Prometheus scrape the nodes directly. It is not rate-limited.
"""

from __future__ import annotations

from aiohttp import web

from propdev.http.keys import METRICS
from propdev.http.openapi import Response, doc
from propdev.http.permissions import Permission, requires
from propdev.observability import CONTENT_TYPE

routes = web.RouteTableDef()


@routes.get("/metrics")
@requires(Permission.PUBLIC)
@doc(
    "Prometheus metrics (text exposition format 0.0.4)",
    description=(
        "HTTP requests and latency by route template and status, partner calls by partner, "
        "operation and outcome, circuit breaker states and transitions, actors by kind, "
        "WebSocket connections, bus messages, rate-limit rejections. See docs/observability.md."
    ),
    tags=["operations"],
    rate_limited=False,
    responses={200: Response({"type": "string"}, "The metrics.", "text/plain")},
)
async def metrics(request: web.Request) -> web.Response:
    body = request.app[METRICS].render()
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})
