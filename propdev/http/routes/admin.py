"""The operators' API: the supervision tree, restarts, nodes, breakers, the audit log, the
caller's recovery codes left."""

from __future__ import annotations

import time

from aiohttp import web

from propdev.http import schemas
from propdev.http.errors import NotFoundError
from propdev.http.keys import ACTOR_SYSTEM, AUDIT, DATABASE, NODES, PARTNER_GATEWAYS
from propdev.http.middlewares import principal
from propdev.http.openapi import Param, doc
from propdev.http.routes.resident import int_param
from propdev.http.scope import LISTED, At, Source, scope_of, scoped, visible_to
from propdev.security import (
    RECOVERY_CODES_LOW,
    get_user,
    new_recovery_codes,
    recovery_codes_status,
    store_recovery_codes,
)
from propdev.staff import Action, Kind, audit_within
from propdev.storage.audit import AuditRecord

routes = web.RouteTableDef()


@routes.get("/admin/api/v1/actors")
@scoped(Action.SYSTEM_READ, LISTED)
@doc(
    "The supervision tree: supervisors and actors with state, mailbox and restarts",
    tags=["admin"],
    responses={200: schemas.ACTOR_TREE},
)
async def actors(request: web.Request) -> web.Response:
    visible = await visible_to(request)
    return web.json_response(visible.tree(request.app[ACTOR_SYSTEM].snapshot()))


@routes.post("/admin/api/v1/actors/{actor_id}/restart")
@scoped(Action.SYSTEM_OPERATE, At(Kind.ACTOR, "actor_id"))
@doc(
    "Restart an activated actor (on_stop, new instance, on_start)",
    tags=["admin"],
    responses={
        200: schemas.object_of({"restarted": {"type": "string"}}, required=["restarted"]),
        404: "No such active actor.",
    },
)
async def restart_actor(request: web.Request) -> web.Response:
    actor_id = request.match_info["actor_id"]
    try:
        await request.app[ACTOR_SYSTEM].restart(actor_id)
    except (KeyError, ValueError, LookupError) as exc:
        raise NotFoundError(f"No active actor {actor_id!r}.") from exc
    return web.json_response({"restarted": actor_id})


@routes.get("/admin/api/v1/nodes")
@scoped(Action.SYSTEM_READ, LISTED)
@doc(
    "The nodes of the cluster and their shards",
    tags=["admin"],
    responses={
        200: schemas.object_of({"nodes": schemas.array_of(schemas.ANY_OBJECT)}, required=["nodes"])
    },
)
async def nodes(request: web.Request) -> web.Response:
    return web.json_response(request.app[NODES].snapshot())  # members, shards, owners


@routes.get("/admin/api/v1/breakers")
@scoped(Action.SYSTEM_READ, LISTED)
@doc(
    "Partners' circuit breakers",
    tags=["admin"],
    responses={
        200: schemas.object_of(
            {"breakers": schemas.array_of(schemas.ANY_OBJECT)}, required=["breakers"]
        )
    },
)
async def breakers(request: web.Request) -> web.Response:
    gateways = request.app[PARTNER_GATEWAYS]
    visible = await visible_to(request)
    shown = [g.snapshot() for name, g in gateways.items() if visible.partner(name)]
    return web.json_response({"breakers": shown})


@routes.get("/admin/api/v1/audit")
@scoped(Action.AUDIT_READ, At(Kind.ACCESS_POINT, "access_point_id", Source.QUERY), LISTED)
@doc(
    "The audit log (hash-chained), paged and filtered",
    tags=["admin"],
    query=[
        Param("limit", {"type": "integer", "minimum": 1, "maximum": 1000}),
        Param("after", {"type": "integer", "minimum": 0}),
        Param("access_point_id", description="only entries about this access point"),
    ],
    responses={200: schemas.AUDIT_PAGE},
)
async def audit(request: web.Request) -> web.Response:
    limit = int_param(request, "limit", 100, lo=1, hi=1000)
    after = int_param(request, "after", 0, lo=0, hi=2**62)
    access_point_id = request.query.get("access_point_id") or None
    entries = await request.app[AUDIT].page(
        access_point_id=access_point_id,
        after=after,
        limit=limit + 1,
        within=audit_within(scope_of(request)),
    )
    more = len(entries) > limit
    entries = entries[:limit]
    return web.json_response(
        {"entries": entries, "next": entries[-1]["id"] if more and entries else None}
    )


@routes.get("/admin/api/v1/me/recovery-codes")
@scoped(Action.SELF, LISTED)
@doc(
    "How many of the calling operator's recovery codes are left (never the codes)",
    description=(
        "`low` is true at `low_at` unused codes or fewer: time for a new set "
        "(`python run.py totp recovery-codes USERNAME`). 404 for an operator of an external "
        "identity provider, whose second factor is the provider's."
    ),
    tags=["admin"],
    responses={
        200: schemas.object_of(
            {
                "remaining": {"type": "integer", "minimum": 0},
                "issued": {"type": "integer", "minimum": 0},
                "low": {"type": "boolean"},
                "low_at": {"type": "integer", "minimum": 0},
            },
            required=["remaining", "issued", "low", "low_at"],
        ),
        404: "The caller has no local account.",
    },
)
async def my_recovery_codes(request: web.Request) -> web.Response:
    db = request.app[DATABASE]
    caller = principal(request)
    if await get_user(db, caller.sub) is None:
        raise NotFoundError("No local account: recovery codes are the identity provider's.")
    codes = await recovery_codes_status(db, caller.sub)
    return web.json_response(
        {
            "remaining": codes.remaining,
            "issued": codes.issued,
            "low": codes.low,
            "low_at": RECOVERY_CODES_LOW,
        }
    )


@routes.post("/admin/api/v1/me/recovery-codes")
@scoped(Action.SELF, LISTED)
@doc(
    "A new set of recovery codes for the calling staff member, shown once",
    description=(
        "Replaces the earlier set (as `python run.py totp recovery-codes USERNAME`): after the "
        "first login with a code of the TOTP seed (`POST /api/v1/activation`), a new staff "
        "member gets its codes here. Only HMAC hashes are kept. Audited as "
        "`operator.recovery_codes` (never a code). 404 for an operator of an external "
        "identity provider, or an account without a TOTP seed."
    ),
    tags=["admin"],
    responses={
        201: schemas.object_of(
            {"recovery_codes": schemas.array_of(schemas.STRING)}, required=["recovery_codes"]
        ),
        404: "The caller has no local account with a TOTP seed.",
    },
)
async def new_my_recovery_codes(request: web.Request) -> web.Response:
    db = request.app[DATABASE]
    caller = principal(request)
    user = await get_user(db, caller.sub)
    if user is None or not user.has_totp:
        raise NotFoundError("No local account with a TOTP seed: no recovery codes.")
    codes = new_recovery_codes()
    await store_recovery_codes(db, caller.sub, codes)
    await request.app[AUDIT].append(
        AuditRecord(
            at=time.time(),
            actor=f"operator:{caller.sub}",
            action="operator.recovery_codes",
            access_point_id=None,
            decision="granted",
            reason=f"id={caller.sub} count={len(codes)}",
            subject=caller.sub,
        )
    )
    return web.json_response(
        {"recovery_codes": codes}, status=201, headers={"Cache-Control": "no-store"}
    )
