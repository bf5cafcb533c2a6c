"""Staff accounts by API (``/admin/api/v1/operators``): create with an activation code, list,
read, change roles, sites and name, disable, reset another's second factor.

Scope is ``propdev.http.scope``'s (each route's ``@scoped``); the rules of who may hand out
what are ``propdev.staff.Staff``'s.
"""

from __future__ import annotations

import structlog
from aiohttp import web

from propdev.http import schemas
from propdev.http.body import json_body
from propdev.http.keys import STAFF
from propdev.http.openapi import doc
from propdev.http.scope import LISTED, At, scope_of, scoped
from propdev.staff import Action, Kind

log = structlog.get_logger()
routes = web.RouteTableDef()

TAGS = ["staff"]
ROLES = schemas.array_of({"type": "string", "enum": ["admin", "operator", "auditor"]})
SITE_IDS: schemas.JSONSchema = {
    "type": ["array", "null"],
    "items": {"type": "string"},
    "minItems": 1,
    "description": "the sites this account sees and acts on; `null`: the whole organisation",
}
STAFF_MEMBER = schemas.named(
    "StaffMember",
    schemas.object_of(
        {
            "id": schemas.STRING,
            "username": schemas.STRING,
            "full_name": schemas.STRING,
            "roles": ROLES,
            "site_ids": SITE_IDS,
            "status": {"type": "string", "enum": ["pending", "active", "disabled"]},
            "totp_enrolled": schemas.BOOLEAN,
            "disabled_at": {"type": ["number", "null"]},
        },
        required=["id", "username", "full_name", "roles", "site_ids", "status"],
    ),
)
NEW_STAFF = schemas.named(
    "NewStaffMember",
    schemas.object_of(
        {
            "username": {"type": "string", "minLength": 1, "maxLength": 64},
            "full_name": {"type": "string", "minLength": 1, "maxLength": 200},
            "roles": {**ROLES, "minItems": 1},
            "site_ids": SITE_IDS,
        },
        required=["username", "full_name", "roles", "site_ids"],
        additional=False,
    ),
)
STAFF_CHANGE = schemas.named(
    "StaffChange",
    schemas.object_of(
        {
            "full_name": {"type": "string", "minLength": 1, "maxLength": 200},
            "roles": {**ROLES, "minItems": 1},
            "site_ids": SITE_IDS,
        },
        additional=False,
    ),
)
ACTIVATION = schemas.named(
    "StaffActivation",
    schemas.object_of(
        {
            "id": schemas.STRING,
            "username": schemas.STRING,
            "activation_code": {
                "type": "string",
                "description": "shown once: `POST /api/v1/activation` with it sets the password "
                "and answers the TOTP seed (`totp_uri`)",
            },
        },
        required=["id", "username", "activation_code"],
    ),
)
STAFF_SELF = schemas.named(
    "StaffSelf",
    schemas.object_of(
        {
            "id": schemas.STRING,
            "roles": ROLES,
            "site_ids": SITE_IDS,
            "actions": schemas.array_of(
                {"type": "string", "enum": [a.value for a in Action]},
            ),
        },
        required=["id", "roles", "site_ids", "actions"],
    ),
)
BAD = "Unknown field, unknown role, or a malformed value (`field` names it)."
OUT = "No such staff member in your scope."


@routes.get("/admin/api/v1/me")
@scoped(Action.SELF, LISTED)
@doc(
    "The calling staff member's scope: roles, sites and the actions they allow",
    description=(
        "What the console reads to show only the pages and buttons the caller may use; the "
        "server enforces the same scope on every call regardless."
    ),
    tags=TAGS,
    responses={200: STAFF_SELF},
)
async def staff_self(request: web.Request) -> web.Response:
    scope = scope_of(request)
    return web.json_response(
        {
            "id": scope.user_id,
            "roles": sorted(r.value for r in scope.roles),
            "site_ids": None if scope.site_ids is None else sorted(scope.site_ids),
            "actions": [a.value for a in Action if scope.may(a)],
        }
    )


@routes.get("/admin/api/v1/operators")
@scoped(Action.STAFF_READ, LISTED)
@doc(
    "Staff accounts: those sharing one of your sites (all, for organisation-wide staff)",
    tags=TAGS,
    responses={200: schemas.array_of(STAFF_MEMBER)},
)
async def list_staff(request: web.Request) -> web.Response:
    return web.json_response(await request.app[STAFF].list(scope_of(request)))


@routes.post("/admin/api/v1/operators")
@scoped(Action.STAFF_MANAGE, LISTED)
@doc(
    "Create a staff account (admin): an activation code, shown once",
    description=(
        "The account has no password and no second factor until it is activated "
        "(`POST /api/v1/activation`); the first login with a code of the TOTP seed completes "
        "the enrolment. A scoped admin creates accounts only inside its own sites (another "
        "site: 404; `site_ids: null`: 403). Audited as `operator.create`."
    ),
    tags=TAGS,
    request=NEW_STAFF,
    responses={
        201: ACTIVATION,
        400: BAD,
        403: "Your role may not, or `site_ids: null` from a scoped admin.",
        404: "A site that does not exist or is not yours.",
        409: "The username is taken.",
    },
)
async def create_staff(request: web.Request) -> web.Response:
    created = await request.app[STAFF].create(scope_of(request), await json_body(request))
    log.info("staff_created", user_id=created["id"], by=scope_of(request).user_id)
    return web.json_response(created, status=201, headers={"Cache-Control": "no-store"})


@routes.get("/admin/api/v1/operators/{id}")
@scoped(Action.STAFF_READ, At(Kind.STAFF))
@doc("One staff account", tags=TAGS, responses={200: STAFF_MEMBER, 404: OUT})
async def get_staff(request: web.Request) -> web.Response:
    found = await request.app[STAFF].get(scope_of(request), request.match_info["id"])
    return web.json_response(found)


@routes.patch("/admin/api/v1/operators/{id}")
@scoped(Action.STAFF_MANAGE, At(Kind.STAFF))
@doc(
    "Change a staff account's roles, sites or name (admin)",
    description=(
        "Counts at the account's next call, on every node. The last organisation-wide admin "
        "stays one (409). Audited as `operator.change`."
    ),
    tags=TAGS,
    request=STAFF_CHANGE,
    responses={
        200: STAFF_MEMBER,
        400: BAD,
        403: "Your role may not, or the account also works at sites that are not yours.",
        404: OUT,
        409: "The last organisation-wide admin, or a disabled account.",
    },
)
async def change_staff(request: web.Request) -> web.Response:
    changed = await request.app[STAFF].change(
        scope_of(request), request.match_info["id"], await json_body(request)
    )
    return web.json_response(changed)


@routes.delete("/admin/api/v1/operators/{id}")
@scoped(Action.STAFF_MANAGE, At(Kind.STAFF))
@doc(
    "Disable a staff account (admin): its tokens and sessions stop at once, on every node",
    description=(
        "Its password and second factor are dropped, its refresh tokens revoked and its access "
        "tokens refused by every node. Disabling a disabled account changes nothing. The last "
        "organisation-wide admin cannot be disabled (409). Audited as `operator.disable`."
    ),
    tags=TAGS,
    responses={204: None, 403: "Your role may not.", 404: OUT, 409: "The last admin."},
)
async def disable_staff(request: web.Request) -> web.Response:
    user_id = request.match_info["id"]
    if await request.app[STAFF].disable(scope_of(request), user_id):
        log.warning("staff_disabled", user_id=user_id, by=scope_of(request).user_id)
    return web.Response(status=204)


@routes.post("/admin/api/v1/operators/{id}/reset-2fa")
@scoped(Action.STAFF_MANAGE, At(Kind.STAFF))
@doc(
    "Reset another staff account's second factor (admin): a new activation code",
    description=(
        "Drops the account's TOTP seed, recovery codes, password and sessions; the account "
        "enrols again with the code (`POST /api/v1/activation`). Audited as "
        "`operator.reset_2fa`."
    ),
    tags=TAGS,
    responses={201: ACTIVATION, 403: "Your role may not.", 404: OUT, 409: "A disabled account."},
)
async def reset_2fa(request: web.Request) -> web.Response:
    found = await request.app[STAFF].reset_2fa(scope_of(request), request.match_info["id"])
    return web.json_response(found, status=201, headers={"Cache-Control": "no-store"})
