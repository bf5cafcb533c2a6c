"""``/admin/api/v1/residents`` and ``/admin/api/v1/rights``: who lives where, who may open
what and when."""

from __future__ import annotations

import structlog
from aiohttp import web

from propdev.http import schemas
from propdev.http.access_problems import UnprocessableError
from propdev.http.body import json_body
from propdev.http.openapi import Param, Response, doc
from propdev.http.routes.manage_support import (
    ID,
    INVALID,
    NAME,
    NULLABLE_NUMBER,
    TAGS,
    actor,
    body,
    listed,
    management,
)
from propdev.http.scope import LISTED, At, Source, scope_of, scoped
from propdev.staff import Action, Kind

log = structlog.get_logger()
_NO_BODY = object()
routes = web.RouteTableDef()

RESIDENT = schemas.named(
    "Resident",
    schemas.object_of(
        {
            "id": schemas.STRING,
            "username": schemas.STRING,
            "full_name": schemas.STRING,
            "phone": schemas.STRING,
            "apartment_id": schemas.NULLABLE_STRING,
            "status": {"type": "string", "enum": ["active", "moved_out"]},
            "moved_out_at": NULLABLE_NUMBER,
        },
        required=["id", "username", "full_name", "phone", "apartment_id", "status"],
        description="Personal data is opened only for this operator answer.",
    ),
)
INVITATION_REQUEST = schemas.named(
    "ResidentInvitation",
    schemas.object_of(
        {
            "username": {"type": "string", "pattern": "^[a-z0-9][a-z0-9._-]{2,63}$"},
            "full_name": NAME,
            "phone": {"type": "string", "examples": ["+79990000009"]},
            "apartment_id": ID,
        },
        required=["username", "full_name", "apartment_id"],
        additional=False,
    ),
)
INVITED = schemas.named(
    "ResidentInvited",
    schemas.object_of(
        {
            "resident": RESIDENT,
            "temporary_password": {
                "type": "string",
                "description": "shown once, to hand to the resident; never stored in clear",
            },
            "activation_code": {
                "type": "string",
                "description": (
                    "shown once, to hand to the resident: with it they choose their own "
                    "password (`POST /api/v1/activation`), once, until it expires"
                ),
            },
            "activation_expires_at": {
                "type": "number",
                "description": "when the activation code stops working (epoch seconds)",
            },
        },
        required=["resident", "temporary_password", "activation_code", "activation_expires_at"],
    ),
)
MOVED_OUT = schemas.named(
    "ResidentMovedOut",
    schemas.object_of(
        {
            "id": schemas.STRING,
            "moved_out_at": schemas.NUMBER,
            "rights_ended": schemas.INTEGER,
            "passes_revoked": schemas.INTEGER,
            "vehicles_removed": schemas.INTEGER,
            "refresh_tokens_revoked": schemas.INTEGER,
        },
        required=[
            "id",
            "moved_out_at",
            "rights_ended",
            "passes_revoked",
            "vehicles_removed",
            "refresh_tokens_revoked",
        ],
    ),
)
_TIME_OF_DAY = "^([01][0-9]|2[0-3]):[0-5][0-9]$"
# propdev.access's schedule.DAYS and MAX_WINDOWS (tests/contract/test_openapi_document.py)
_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
SCHEDULE: schemas.JSONSchema = {
    "type": ["object", "null"],
    "description": (
        'Weekly windows in the site\'s time zone: {"windows": [{"days": ["mon"], "from": '
        '"07:00", "until": "22:00"}]}; past midnight allowed (`until` before `from`), `from` '
        "and `until` never equal; null: at all times."
    ),
    # what propdev.access.Schedule.parse takes
    "required": ["windows"],
    "properties": {
        "windows": {
            "type": "array",
            "minItems": 1,
            "maxItems": 28,
            "items": {
                "type": "object",
                "required": ["days", "from", "until"],
                "properties": {
                    "days": {
                        "type": "array",
                        "minItems": 1,
                        "items": {"type": "string", "enum": list(_DAYS)},
                    },
                    "from": {"type": "string", "pattern": _TIME_OF_DAY},
                    "until": {
                        "type": "string",
                        "pattern": "^(([01][0-9]|2[0-3]):[0-5][0-9]|24:00)$",
                    },
                },
            },
        }
    },
}
RIGHT = schemas.named(
    "Right",
    schemas.object_of(
        {
            "user_id": schemas.STRING,
            "access_point_id": schemas.STRING,
            "schedule": SCHEDULE,
        },
        required=["user_id", "access_point_id", "schedule"],
    ),
)
RIGHT_REQUEST = schemas.named(
    "RightRequest",
    schemas.object_of({"schedule": SCHEDULE}, additional=False),
)


# -- residents -------------------------------------------------------------------------------


@routes.get("/admin/api/v1/residents")
@scoped(Action.RESIDENTS_READ, At(Kind.APARTMENT, "apartment_id", Source.QUERY), LISTED)
@doc(
    "List residents with their personal data (audited)",
    description=(
        "Each resident answered is a `resident.read` audit entry (actor `operator:<id>`, "
        "subject the resident), written before the answer."
    ),
    tags=TAGS,
    query=[Param("apartment_id", description="only the residents of this apartment")],
    responses={200: schemas.array_of(RESIDENT)},
)
async def list_residents(request: web.Request) -> web.Response:
    residents = management(request).residents
    found = await residents.read_all(
        actor(request),
        apartment_id=request.query.get("apartment_id") or None,
        sites=scope_of(request).site_ids,
    )
    return web.json_response(found)


@routes.post("/admin/api/v1/residents")
@scoped(Action.RESIDENTS_MANAGE, At(Kind.APARTMENT, "apartment_id", Source.BODY))
@doc(
    "Invite a resident",
    description=(
        "Creates an account with the resident role in the apartment and answers its temporary "
        "password and an activation code once (not logged, not audited). Audited as "
        "`resident.invite` (ids only)."
    ),
    tags=TAGS,
    request=INVITATION_REQUEST,
    responses={201: INVITED, 409: "The username is taken.", 422: INVALID},
)
async def invite_resident(request: web.Request) -> web.Response:
    invitation = await management(request).residents.invite(actor(request), await body(request))
    resident = invitation.resident
    log.info("resident_invited", user_id=resident["id"], apartment_id=resident["apartment_id"])
    return web.json_response(
        {
            "resident": resident,
            "temporary_password": invitation.temporary_password,
            "activation_code": invitation.activation_code,
            "activation_expires_at": invitation.activation_expires_at,
        },
        status=201,
        headers={"Cache-Control": "no-store"},
    )


@routes.get("/admin/api/v1/residents/{id}")
@scoped(Action.RESIDENTS_READ, At(Kind.RESIDENT))
@doc(
    "One resident with their personal data (audited)",
    description="A `resident.read` audit entry (subject the resident), written before the answer.",
    tags=TAGS,
    responses={200: RESIDENT, 404: "No such resident."},
)
async def get_resident(request: web.Request) -> web.Response:
    residents = management(request).residents
    return web.json_response(await residents.read(actor(request), request.match_info["id"]))


@routes.post("/admin/api/v1/residents/{id}/move-out")
@scoped(Action.RESIDENTS_MANAGE, At(Kind.RESIDENT))
@doc(
    "Move a resident out: everything they hold ends at once",
    description=(
        "In one transaction: rights withdrawn, guest passes revoked, vehicles removed, refresh "
        "tokens revoked, the password made unusable. Then their access tokens are refused on "
        "every node (401). Audited as `resident.move_out` with the counts."
    ),
    tags=TAGS,
    responses={200: MOVED_OUT, 404: "No such resident.", 409: "Moved out already."},
)
async def move_out(request: web.Request) -> web.Response:
    report = await management(request).residents.move_out(actor(request), request.match_info["id"])
    log.info("resident_moved_out", user_id=report["id"])
    return web.json_response(report)


# -- rights ----------------------------------------------------------------------------------


@routes.get("/admin/api/v1/rights")
@scoped(
    Action.RESIDENTS_READ,
    At(Kind.RESIDENT, "user_id", Source.QUERY),
    At(Kind.ACCESS_POINT, "access_point_id", Source.QUERY),
    LISTED,
)
@doc(
    "List rights",
    tags=TAGS,
    query=[
        Param("user_id", description="only this user's"),
        Param("access_point_id", description="only this access point's"),
    ],
    responses={200: schemas.array_of(RIGHT)},
)
async def list_rights(request: web.Request) -> web.Response:
    return await listed(request, management(request).rights.list, "user_id", "access_point_id")


@routes.put("/admin/api/v1/rights/{user_id}/{access_point_id}")
@scoped(
    Action.RESIDENTS_MANAGE, At(Kind.RESIDENT, "user_id"), At(Kind.ACCESS_POINT, "access_point_id")
)
@doc(
    "Grant (or replace) a right, with an optional schedule",
    description=(
        "Takes effect on every node at once (rights are read from the store at each open). "
        "Audited as `right.grant`."
    ),
    tags=TAGS,
    request=RIGHT_REQUEST,
    request_required=False,
    responses={
        201: Response(RIGHT, "Granted."),
        200: Response(RIGHT, "Replaced (the schedule)."),
        404: "No such user or access point.",
        409: "The user has moved out.",
        422: INVALID,
    },
)
async def grant_right(request: web.Request) -> web.Response:
    data = await json_body(request, required=False, absent=_NO_BODY)
    if data is _NO_BODY:  # (null is a 422 like any other non-object)
        data = None
    elif not isinstance(data, dict):
        raise UnprocessableError("body: expected a JSON object", extra={"field": "body"})
    right, new = await management(request).rights.grant(
        actor(request),
        request.match_info["user_id"],
        request.match_info["access_point_id"],
        data,
    )
    return web.json_response(right, status=201 if new else 200)


@routes.delete("/admin/api/v1/rights/{user_id}/{access_point_id}")
@scoped(
    Action.RESIDENTS_MANAGE, At(Kind.RESIDENT, "user_id"), At(Kind.ACCESS_POINT, "access_point_id")
)
@doc(
    "Revoke a right",
    description="The next open is refused, on every node. Audited as `right.revoke`.",
    tags=TAGS,
    responses={204: None, 404: "No such right."},
)
async def revoke_right(request: web.Request) -> web.Response:
    await management(request).rights.revoke(
        actor(request), request.match_info["user_id"], request.match_info["access_point_id"]
    )
    return web.Response(status=204)
