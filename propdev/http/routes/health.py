"""Liveness and readiness."""

from __future__ import annotations

from aiohttp import web

from propdev.http import schemas
from propdev.http.keys import READINESS
from propdev.http.openapi import Response, doc
from propdev.http.permissions import Permission, requires

routes = web.RouteTableDef()

READINESS_REPORT = schemas.object_of(
    {
        "ready": {"type": "boolean"},
        "checks": {"type": "object", "additionalProperties": {"type": "boolean"}},
        "draining": {
            "type": "boolean",
            "description": "The node was drained (`POST /admin/api/v1/nodes/{node_id}/drain`).",
        },
    },
    required=["ready", "checks"],
)


@routes.get("/healthz")
@requires(Permission.PUBLIC)
@doc(
    "Liveness: the process answers",
    tags=["operations"],
    rate_limited=False,
    responses={200: schemas.object_of({"status": {"const": "ok"}})},
)
async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


@routes.get("/readyz")
@requires(Permission.PUBLIC)
@doc(
    "Readiness: store, bus, registry and actors are up",
    tags=["operations"],
    rate_limited=False,
    responses={
        200: READINESS_REPORT,
        503: Response(READINESS_REPORT, "Not ready.", "application/json"),
    },
)
async def readyz(request: web.Request) -> web.Response:
    probe = request.app[READINESS]
    checks = await probe.readiness()
    ready = all(checks.values())
    return web.json_response(
        {"ready": ready, "checks": checks, "draining": probe.draining},
        status=200 if ready else 503,
    )
