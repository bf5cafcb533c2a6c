"""``/admin/api/v1/residents/{id}/export`` and ``/erase``: a resident's personal data, all of
it for them (152-FZ art. 14), or destroyed (art. 21); see ``propdev.privacy`` and
``docs/personal-data.md``."""

from __future__ import annotations

import structlog
from aiohttp import web

from propdev.http import schemas
from propdev.http.keys import PRIVACY
from propdev.http.openapi import doc
from propdev.http.routes.manage_support import NULLABLE_NUMBER, TAGS, actor
from propdev.http.scope import At, scoped
from propdev.staff import Action, Kind

log = structlog.get_logger()
routes = web.RouteTableDef()

_ROWS = schemas.array_of(schemas.ANY_OBJECT)
RESIDENT_EXPORT = schemas.named(
    "ResidentExport",
    schemas.object_of(
        {
            "format": schemas.INTEGER,
            "exported_at": schemas.NUMBER,
            "account": schemas.object_of(
                {
                    "id": schemas.STRING,
                    "username": schemas.STRING,
                    "full_name": schemas.STRING,
                    "phone": schemas.STRING,
                    "roles": schemas.array_of(schemas.STRING),
                    "created_at": schemas.NUMBER,
                    "second_factor": schemas.BOOLEAN,
                    "recovery_codes": _ROWS,
                },
                required=["id", "username", "full_name", "phone", "roles", "created_at"],
                additional=True,
            ),
            "residency": {
                "type": ["object", "null"],
                "properties": {
                    "apartment_id": schemas.NULLABLE_STRING,
                    "since": schemas.NUMBER,
                    "moved_out_at": NULLABLE_NUMBER,
                },
            },
            "rights": _ROWS,
            "vehicles": _ROWS,
            "guest_passes": _ROWS,
            "push_tokens": _ROWS,
            "sessions": _ROWS,
            "authorization_codes": _ROWS,
            "events": schemas.array_of(schemas.EVENT),
            "commands": _ROWS,
            "cached_answers": _ROWS,
            "meter_readings": _ROWS,
            "audit": _ROWS,
        },
        required=[
            "format",
            "exported_at",
            "account",
            "residency",
            "rights",
            "vehicles",
            "guest_passes",
            "sessions",
            "events",
            "commands",
            "meter_readings",
            "audit",
        ],
        description=(
            "Everything held on the resident, personal data opened; secrets (password, TOTP, "
            "token hashes) only as facts. Tables and purposes: docs/personal-data.md."
        ),
        additional=True,
    ),
)


@routes.get("/admin/api/v1/residents/{id}/export")
@scoped(Action.RESIDENTS_MANAGE, At(Kind.RESIDENT))
@doc(
    "Everything held on a resident (152-FZ art. 14)",
    description=(
        "Account (name and phone opened), residency, rights, vehicles (plates opened), guest "
        "passes issued, sessions, events, commands, meter readings and the audit entries about "
        "or by the resident with their personal fields. Audited as `resident.export` (subject: "
        "the resident)."
    ),
    tags=TAGS,
    responses={200: RESIDENT_EXPORT, 404: "No such resident, or the resident was erased."},
)
async def export_resident(request: web.Request) -> web.Response:
    user_id = request.match_info["id"]
    document = await request.app[PRIVACY].export(actor(request), user_id)
    log.info("resident_exported", user_id=user_id)
    return web.json_response(document, headers={"Cache-Control": "no-store"})


@routes.post("/admin/api/v1/residents/{id}/erase")
@scoped(Action.RESIDENTS_MANAGE, At(Kind.RESIDENT))
@doc(
    "Erase a resident's personal data (152-FZ art. 21)",
    description=(
        "In one transaction: the resident's own data key destroyed (their name, phone, "
        "second factor, plates and audit personal fields were sealed under it: any copy of "
        "them, in a replica, a log or a dump, no longer opens), name, phone, username and "
        "second factor blanked, roles removed, "
        "rights, vehicles, guest passes, sessions, events and commands deleted, the "
        "residency's apartment forgotten, the personal fields of the audit entries about or "
        "by the resident blanked (the hash chain still verifies). Then their access tokens "
        "are refused on every node (401). Audited as `resident.erase` (counts, no personal "
        "data). The export then answers 404."
    ),
    tags=TAGS,
    responses={
        204: None,
        404: "No such resident.",
        409: "The resident was erased already (nothing changed).",
    },
)
async def erase_resident(request: web.Request) -> web.Response:
    report = await request.app[PRIVACY].erase(actor(request), request.match_info["id"])
    log.warning("resident_erased", user_id=report.user_id, **report.counts)
    return web.Response(status=204)
