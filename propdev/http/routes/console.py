"""The supervision console: its page (``/admin/``), its live feed (``/admin/api/v1/ws``) and
the hand-opening of a door with a stated reason.

The page is public (it holds no data); it logs the operator in with the authorization code +
PKCE flow (client ``propdev-console``, redirect back to ``/admin/``) and calls the operator API
with the token it got.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import time
from importlib import resources
from typing import Any

import structlog
from aiohttp import WSMsgType, web

from propdev.http import schemas
from propdev.http.body import json_body
from propdev.http.errors import BadRequestError, NotFoundError
from propdev.http.keys import (
    ACTOR_SYSTEM,
    DEVICES,
    DIRECTORY,
    NODE_ID,
    OPENER,
    OPENING,
    PARTNER_GATEWAYS,
    STAFF,
)
from propdev.http.middlewares import principal
from propdev.http.open_outcomes import open_message, open_response
from propdev.http.openapi import Param, Response, doc
from propdev.http.permissions import Permission, requires
from propdev.http.scope import LISTED, At, scoped
from propdev.staff import EVERYTHING, Action, Kind, Visible

log = structlog.get_logger()
routes = web.RouteTableDef()

CONSOLE_FILES = resources.files("propdev.console")
STATIC = {
    "console.js": "text/javascript",
    "estate.js": "text/javascript",
    "partners.js": "text/javascript",
    "console.css": "text/css",
}
CONSOLE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)
PAGE_HEADERS = {
    "Content-Security-Policy": CONSOLE_CSP,
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",  # the login's code comes back in this page's URL
}
PUSH_INTERVAL = 1.0
MAX_TREE_ACTORS = 500
MAX_REASON = 500

SNAPSHOT = schemas.named(
    "ConsoleSnapshot",
    schemas.object_of(
        {
            "type": {"const": "snapshot"},
            "node": schemas.STRING,
            "at": schemas.NUMBER,
            "tree": schemas.ACTOR_TREE,
            "stats": schemas.ANY_OBJECT,
            "breakers": schemas.array_of(schemas.ANY_OBJECT),
            "devices": schemas.array_of(schemas.ANY_OBJECT),
        },
        required=["type", "node", "tree", "stats", "breakers", "devices"],
        description="What the console's WebSocket pushes, every second when it changed.",
    ),
)
MANUAL_OPEN = schemas.named(
    "ManualOpen",
    schemas.object_of(
        {
            "reason": {
                "type": "string",
                "minLength": 3,
                "maxLength": MAX_REASON,
                "pattern": "\\S",
                "description": "why the operator opens it; kept in the audit log",
            }
        },
        required=["reason"],
        additional=False,
    ),
)


@functools.cache
def _file(name: str) -> bytes:
    return (CONSOLE_FILES / name).read_bytes()


@routes.get("/admin")
@requires(Permission.PUBLIC)
@doc(
    "The supervision console (redirect to `/admin/`)",
    tags=["console"],
    responses={301: Response(None, "To `/admin/`.", headers={"Location": "`/admin/`"})},
)
async def console_redirect(request: web.Request) -> web.Response:
    return web.Response(status=301, headers={"Location": "/admin/"})


@routes.get("/admin/")
@requires(Permission.PUBLIC)
@doc(
    "The supervision console: a page for operators",
    description="Logs the operator in (code + PKCE, with the TOTP step) and shows the node live.",
    tags=["console"],
    responses={200: Response({"type": "string"}, "The console page.", "text/html")},
)
async def console_page(request: web.Request) -> web.Response:
    return web.Response(
        body=_file("index.html"), content_type="text/html", charset="utf-8", headers=PAGE_HEADERS
    )


@routes.get("/admin/static/{name}")
@requires(Permission.PUBLIC)
@doc(
    "The console's script and style sheet",
    tags=["console"],
    responses={200: Response({"type": "string"}, "The file.", "*/*"), 404: "No such file."},
)
async def console_static(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    content_type = STATIC.get(name)
    if content_type is None:
        raise web.HTTPNotFound(text="No such file.")
    return web.Response(
        body=_file(name), content_type=content_type, headers={"Cache-Control": "no-cache"}
    )


@routes.get("/admin/api/v1/ws")
@scoped(Action.SYSTEM_READ, LISTED)
@doc(
    "The console's live feed over a WebSocket",
    description=(
        "Token as the subprotocol pair `bearer, <token>` (or the `Authorization` header). "
        "Pushes a `ConsoleSnapshot` at once, then every second when something changed: "
        "only the doors, actors and partners of the caller's sites; "
        "closes with code 4401 when the token expires, 4403 once the account is disabled."
    ),
    tags=["admin", "console"],
    websocket=True,
    headers=[Param("Sec-WebSocket-Protocol", description="`bearer, <token>`")],
    responses={
        101: Response(SNAPSHOT, "The socket is open; messages are snapshots."),
        400: "Not a WebSocket upgrade request.",
    },
)
async def console_ws(request: web.Request) -> web.WebSocketResponse:
    caller = principal(request)
    staff = request.app[STAFF]
    expires = float(caller.claims.get("exp", time.time() + 300))
    ws = web.WebSocketResponse(protocols=("bearer",), heartbeat=30.0, max_msg_size=4096)
    await ws.prepare(request)
    reader = asyncio.create_task(_read_until_closed(ws))
    log.info("console_connected", sub=caller.sub)
    last = ""
    try:
        while not ws.closed and not reader.done():
            if time.time() >= expires:
                await ws.close(code=4401, message=b"token expired")
                break
            scope = await staff.scope_of(caller.sub, caller.roles)  # a change counts at once
            if scope is None:
                await ws.close(code=4403, message=b"no longer staff")
                break
            snapshot = await console_snapshot(request.app, await staff.visible(scope))
            text = json.dumps(snapshot, sort_keys=True, default=str)
            if text != last:
                await ws.send_str(json.dumps({**snapshot, "at": time.time()}, default=str))
                last = text
            await asyncio.wait({reader}, timeout=PUSH_INTERVAL)
    except (ConnectionError, RuntimeError):
        pass  # the browser went away between two pushes
    finally:
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reader
        log.info("console_disconnected", sub=caller.sub)
    return ws


async def _read_until_closed(ws: web.WebSocketResponse) -> None:
    async for msg in ws:
        if msg.type == WSMsgType.TEXT and msg.data == "ping":
            await ws.send_str("pong")


async def console_snapshot(app: web.Application, visible: Visible = EVERYTHING) -> dict[str, Any]:
    """The supervision tree, the breakers and the devices, as the console shows them: those
    ``visible`` to the caller (the actors, doors and partners of their sites)."""
    system, opening = app[ACTOR_SYSTEM], app[OPENING]
    points = [
        p
        for p in await app[DIRECTORY].all_access_points()
        if visible.access_points is None or p.id in visible.access_points
    ]
    online = await app[DEVICES].device_online([p.id for p in points])
    keypads = await opening.lockout.snapshots([p.id for p in points], opening.clock())
    devices = [
        {
            "id": p.id,
            "name": p.name,
            "kind": p.kind,
            "partner": p.partner_id,
            "device_id": p.device_id,
            "online": online.get(p.id),
            "active": system.is_active(f"device:{p.id}"),
            "keypad": keypads[p.id],  # in a cluster: the cluster's (Redis), seen on any node
        }
        for p in points
    ]
    return {
        "type": "snapshot",
        "node": app[NODE_ID],
        "tree": visible.tree(system.snapshot(max_actors=MAX_TREE_ACTORS)),
        "stats": system.stats(),
        "breakers": [
            g.snapshot() for name, g in app[PARTNER_GATEWAYS].items() if visible.partner(name)
        ],
        "devices": devices,
    }


@routes.post("/admin/api/v1/access-points/{id}/open")
@scoped(Action.OPEN, At(Kind.ACCESS_POINT))
@doc(
    "Open an access point by hand, with a stated reason (audited)",
    description=(
        "Goes through the device actor like a resident's open; the audit log gets an entry "
        "with actor `operator:<id>`, action `manual_open` and the reason."
    ),
    tags=["admin"],
    request=MANUAL_OPEN,
    responses={
        200: schemas.OPEN_GRANTED,
        400: "No reason, or a malformed body.",
        403: "The device vendor refused, or the token is not an operator's.",
        404: "No such access point.",
        502: "The partner failed.",
        503: Response(
            schemas.PROBLEM,
            "The partner's circuit is open, or it is busy.",
            "application/problem+json",
            {"Retry-After": "seconds to wait"},
        ),
        504: "The partner did not answer in time.",
    },
)
async def manual_open(request: web.Request) -> web.Response:
    caller = principal(request)
    reason = _reason(await json_body(request))
    access_point_id = request.match_info["id"]
    if await request.app[DIRECTORY].access_point(access_point_id) is None:
        raise NotFoundError(f"No access point {access_point_id!r}.")
    message = open_message(caller, access_point_id, operator_reason=reason)
    outcome = await request.app[OPENER].open(message)
    log.info("manual_open", access_point_id=access_point_id, outcome=outcome.result.value)
    return open_response(outcome)


def _reason(body: Any) -> str:
    if not isinstance(body, dict) or set(body) != {"reason"}:
        raise BadRequestError('The body must be {"reason": "..."}.')
    reason = body["reason"]
    if not isinstance(reason, str) or not 3 <= len(reason) <= MAX_REASON or not reason.strip():
        raise BadRequestError(f"State a reason of 3 to {MAX_REASON} characters.")
    return reason
