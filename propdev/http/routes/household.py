"""A resident's household (``/api/v1/household/members``): the apartment's owner invites
members, who get the owner's doors, lists and removes them (see
``propdev.management.households``)."""

from __future__ import annotations

import structlog
from aiohttp import web

from propdev.http import schemas
from propdev.http.body import json_body
from propdev.http.keys import MANAGEMENT
from propdev.http.middlewares import principal
from propdev.http.openapi import doc
from propdev.http.permissions import Permission, requires

log = structlog.get_logger()
routes = web.RouteTableDef()

TAGS = ["household"]
NOT_OWNER = "The caller is not the owner of an apartment (members cannot invite)."
MEMBER = schemas.named(
    "HouseholdMember",
    schemas.object_of(
        {
            "id": schemas.STRING,
            "username": schemas.STRING,
            "full_name": schemas.STRING,
            "phone": schemas.STRING,
            "status": {"type": "string", "enum": ["active", "moved_out"]},
        },
        required=["id", "username", "full_name", "status"],
    ),
)
NEW_MEMBER = schemas.named(
    "NewHouseholdMember",
    schemas.object_of(
        {
            "full_name": {"type": "string", "minLength": 1, "maxLength": 200},
            "phone": {"type": "string", "description": "E.164, e.g. `+79990001122`"},
        },
        required=["full_name"],
        additional=False,
    ),
)
INVITED = schemas.named(
    "HouseholdInvitation",
    schemas.object_of(
        {
            "id": schemas.STRING,
            "username": schemas.STRING,
            "activation_code": {
                "type": "string",
                "description": "shown once; the member chooses a password with it "
                "(`POST /api/v1/activation`)",
            },
        },
        required=["id", "username", "activation_code"],
    ),
)


@routes.get("/api/v1/household/members")
@requires(Permission.RESIDENT)
@doc(
    "The members of the caller's household (owners only)",
    tags=TAGS,
    responses={200: schemas.array_of(MEMBER), 403: NOT_OWNER},
)
async def list_members(request: web.Request) -> web.Response:
    households = request.app[MANAGEMENT].households
    return web.json_response(await households.members(principal(request).sub))


@routes.post("/api/v1/household/members")
@requires(Permission.RESIDENT)
@doc(
    "Invite a member to the caller's apartment (owners only): the owner's doors",
    description=(
        "The member gets a copy of the owner's rights (schedules included) and an activation "
        "code, shown once. Guest passes a member issues are the member's. Audited as "
        "`household.invite` (actor `user:<owner>`, subject the member); a caller who is no "
        "owner too (`denied`, `not_owner`)."
    ),
    tags=TAGS,
    request=NEW_MEMBER,
    responses={201: INVITED, 403: NOT_OWNER, 422: "A field is invalid (`field` names it)."},
)
async def invite_member(request: web.Request) -> web.Response:
    owner = principal(request).sub
    invited = await request.app[MANAGEMENT].households.invite(owner, await json_body(request))
    log.info("household_member_invited", owner=owner, user_id=invited["id"])
    return web.json_response(invited, status=201, headers={"Cache-Control": "no-store"})


@routes.delete("/api/v1/household/members/{id}")
@requires(Permission.RESIDENT)
@doc(
    "Remove a member of the caller's household (owners only): their access ends at once",
    description=(
        "A move-out of the member: rights, guest passes, vehicles and sessions end, and their "
        "tokens are refused at once on every node. Audited as `household.remove`; a refusal "
        "too (`denied`: `not_owner`, `not_member`)."
    ),
    tags=TAGS,
    responses={204: None, 403: NOT_OWNER, 404: "No such member of the caller's household."},
)
async def remove_member(request: web.Request) -> web.Response:
    owner = principal(request).sub
    member = request.match_info["id"]
    await request.app[MANAGEMENT].households.remove(owner, member)
    log.info("household_member_removed", owner=owner, user_id=member)
    return web.Response(status=204)
