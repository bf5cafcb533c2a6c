"""Liveness and readiness."""

from __future__ import annotations

from aiohttp import web

from propdev.http.keys import NODE
from propdev.http.permissions import Permission, requires

routes = web.RouteTableDef()


@routes.get("/healthz")
@requires(Permission.PUBLIC)
async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


@routes.get("/readyz")
@requires(Permission.PUBLIC)
async def readyz(request: web.Request) -> web.Response:
    checks = await request.app[NODE].readiness()
    ready = all(checks.values())
    return web.json_response({"ready": ready, "checks": checks}, status=200 if ready else 503)
