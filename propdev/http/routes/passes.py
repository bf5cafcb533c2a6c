"""``/api/v1/guest-passes``: a resident issues, lists and revokes codes for their visitors."""

from __future__ import annotations

import structlog
from aiohttp import web

from propdev.access import (
    InvalidFieldError,
    NotEntitledError,
    PassCodes,
    PassNotFoundError,
    PassRequest,
    TooManyPassesError,
)
from propdev.access.passes import MAX_USES, MAX_VALIDITY
from propdev.http import schemas
from propdev.http.access_problems import ConflictError, invalid
from propdev.http.body import json_body
from propdev.http.errors import ForbiddenError, NotFoundError
from propdev.http.keys import PASSES
from propdev.http.middlewares import principal
from propdev.http.openapi import Response, doc
from propdev.http.permissions import Permission, requires

log = structlog.get_logger()
routes = web.RouteTableDef()

DATE_TIME = {"type": "string", "format": "date-time"}

PASS_REQUEST = schemas.named(
    "GuestPassRequest",
    schemas.object_of(
        {
            "access_point_ids": {
                "type": "array",
                "items": schemas.STRING,
                "minItems": 1,
                "maxItems": 20,
                "description": "Access points the caller has a right to.",
            },
            "valid_from": {**DATE_TIME, "description": "Not in the past (5 min of skew)."},
            "valid_until": {
                **DATE_TIME,
                "description": f"After valid_from, at most {MAX_VALIDITY // 86400} days later.",
            },
            "max_uses": {"type": "integer", "minimum": 1, "maximum": MAX_USES},
        },
        required=["access_point_ids", "valid_from", "valid_until", "max_uses"],
    ),
)

GUEST_PASS = schemas.named(
    "GuestPass",
    schemas.object_of(
        {
            "id": schemas.STRING,
            "access_point_ids": schemas.array_of(schemas.STRING),
            "valid_from": DATE_TIME,
            "valid_until": DATE_TIME,
            "max_uses": schemas.INTEGER,
            "uses": schemas.INTEGER,
            "status": {"enum": ["active", "scheduled", "used_up", "expired", "revoked"]},
            "created_at": DATE_TIME,
            "revoked_at": {"type": ["string", "null"], "format": "date-time"},
        },
        required=["id", "access_point_ids", "valid_from", "valid_until", "max_uses", "uses"],
        additional=True,
    ),
)

ISSUED_PASS = schemas.named(
    "IssuedGuestPass",
    {
        "allOf": [GUEST_PASS],
        "type": "object",
        "required": ["id", "code", "qr"],
        "properties": {
            "code": {
                "type": "string",
                "pattern": "^[0-9]{8}$",
                "description": "For the keypad; shown only in this answer (stored hashed).",
            },
            "qr": {"type": "string", "description": "The same code as a QR payload."},
        },
    },
)


def _pass_id(request: web.Request) -> str:
    return request.match_info["id"]


@routes.post("/api/v1/guest-passes")
@requires(Permission.RESIDENT)
@doc(
    "Issue a guest pass",
    description=(
        "A code for the keypad (and as a QR payload) that opens the given access points within "
        "the window, at most `max_uses` times; each use is audited and told to the issuer "
        "(`pass.used`). The issue is audited too (action `guest_pass.create`, actor "
        "`user:<id>`, the pass's id, never the code), and a refusal (`denied`: "
        "`not_entitled`, `too_many_passes`)."
    ),
    tags=["guest passes"],
    request=PASS_REQUEST,
    responses={
        201: Response(ISSUED_PASS, "Issued.", headers={"Location": "The pass's URL."}),
        403: "The caller has no right to one of the access points.",
        409: "The caller holds too many active passes.",
        422: "A field is invalid (`field` names it).",
    },
)
async def issue_pass(request: web.Request) -> web.Response:
    caller = principal(request)
    passes = request.app[PASSES]
    now = passes.clock()
    try:
        wanted = PassRequest.parse(await json_body(request), now=now)
    except InvalidFieldError as exc:
        raise invalid(exc) from None
    try:
        issued, code = await passes.create(caller.sub, wanted)
    except NotEntitledError as exc:
        raise ForbiddenError(
            "You may only give access to access points you may open.",
            extra={"field": "access_point_ids", "access_point_ids": exc.access_point_ids},
        ) from None
    except TooManyPassesError as exc:
        raise ConflictError(str(exc)) from None
    log.info("guest_pass_issued", pass_id=issued.id, owner=caller.sub)
    return web.json_response(
        {**issued.to_json(now), "code": code, "qr": PassCodes.qr(code)},
        status=201,
        headers={"Location": f"/api/v1/guest-passes/{issued.id}"},
    )


@routes.get("/api/v1/guest-passes")
@requires(Permission.RESIDENT)
@doc(
    "The caller's guest passes",
    tags=["guest passes"],
    responses={200: schemas.array_of(GUEST_PASS)},
)
async def list_passes(request: web.Request) -> web.Response:
    passes = request.app[PASSES]
    now = passes.clock()
    found = await passes.of(principal(request).sub)
    return web.json_response([p.to_json(now) for p in found])


@routes.get("/api/v1/guest-passes/{id}")
@requires(Permission.RESIDENT)
@doc(
    "One of the caller's guest passes",
    tags=["guest passes"],
    responses={200: GUEST_PASS, 404: "No such pass of the caller."},
)
async def get_pass(request: web.Request) -> web.Response:
    passes = request.app[PASSES]
    try:
        found = await passes.get(principal(request).sub, _pass_id(request))
    except PassNotFoundError:
        raise NotFoundError("No such guest pass.") from None
    return web.json_response(found.to_json(passes.clock()))


@routes.delete("/api/v1/guest-passes/{id}")
@requires(Permission.RESIDENT)
@doc(
    "Revoke a guest pass",
    description=(
        "The code stops working at once, on every node. Audited (action `guest_pass.revoke`, "
        "actor `user:<id>`); revoking twice is a 204 too and adds no entry."
    ),
    tags=["guest passes"],
    responses={204: None, 404: "No such pass of the caller."},
)
async def revoke_pass(request: web.Request) -> web.Response:
    caller = principal(request)
    try:
        await request.app[PASSES].revoke(caller.sub, _pass_id(request))
    except PassNotFoundError:
        raise NotFoundError("No such guest pass.") from None
    log.info("guest_pass_revoked", pass_id=_pass_id(request), owner=caller.sub)
    return web.Response(status=204)
