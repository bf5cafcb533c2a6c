"""``GET /metrics``: the node's Prometheus metrics in the text exposition format.

No token (Prometheus scrapes without OAuth), but only for the scrapers in
``PROPDEV_METRICS_ALLOW`` (CIDRs, default loopback), judged by the client's address
(``propdev.http.client_address``: the TCP peer, or what a trusted proxy says). Anyone else gets
404, as if there were no such route. It carries no personal data or ids, only bounded labels
(route templates, partners, actor kinds), and is not rate-limited.
"""

from __future__ import annotations

import structlog
from aiohttp import web

from propdev.http.client_address import address_in
from propdev.http.keys import DATABASE, METRICS, METRICS_ALLOW
from propdev.http.openapi import Response, doc
from propdev.http.permissions import Permission, requires
from propdev.integrity import CheckpointStore
from propdev.observability import CONTENT_TYPE
from propdev.storage.backup_runs import last_run_at
from propdev.storage.errors import StoreUnavailableError
from propdev.storage.partner_certificates import KIND as PARTNER_CSR
from propdev.storage.partner_certificates import latest_not_after

log = structlog.get_logger()

routes = web.RouteTableDef()


@routes.get("/metrics")
@requires(Permission.PUBLIC)
@doc(
    "Prometheus metrics (text exposition format 0.0.4)",
    description=(
        "HTTP requests and latency by route template and status, partner calls by partner, "
        "operation and outcome, circuit breaker states and transitions, actors by kind, "
        "WebSocket connections, bus messages, rate-limit rejections. See docs/observability.md. "
        "Only for the scrapers in PROPDEV_METRICS_ALLOW (default loopback); 404 for anyone else."
    ),
    tags=["operations"],
    rate_limited=False,
    responses={
        200: Response({"type": "string"}, "The metrics.", "text/plain"),
        404: "The caller is not an allowed scraper (PROPDEV_METRICS_ALLOW).",
    },
)
async def metrics(request: web.Request) -> web.Response:
    allowed = request.app[METRICS_ALLOW]
    if not address_in(request.remote, allowed):
        raise web.HTTPNotFound()
    metrics = request.app[METRICS]
    # The last backup, the last signed audit checkpoint and the certificates signed from
    # partners' CSRs are facts of the store (a backup is made by a process of its own, a
    # checkpoint by whichever node's turn it was, a certificate through any node's API): read
    # at each scrape, so every node reports the cluster's; a store that does not answer leaves
    # the last values seen.
    db = request.app[DATABASE]
    try:
        last_backup = await last_run_at(db)
        checkpoint = await CheckpointStore(db).latest()
        partner_certificates = await latest_not_after(db)
    except StoreUnavailableError as exc:
        log.warning("metrics_store_unreachable", error=str(exc))
    else:
        if last_backup is not None:
            metrics.record_backup(last_backup)
        if checkpoint is not None:
            metrics.record_audit_checkpoint(checkpoint.at)
        metrics.record_store_certificates(PARTNER_CSR, partner_certificates)
    body = metrics.render()
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})
