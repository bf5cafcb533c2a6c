"""The operators' API: the supervision tree, restarts, nodes, breakers, the audit log, the
caller's recovery codes left."""

from __future__ import annotations

import re
import time

from aiohttp import web

from propdev.http import schemas
from propdev.http.errors import BadRequestError, NotFoundError
from propdev.http.keys import ACTOR_SYSTEM, AUDIT, DATABASE, NODES, PARTNER_GATEWAYS
from propdev.http.middlewares import principal
from propdev.http.openapi import Param, doc
from propdev.http.routes.resident import int_param
from propdev.http.scope import LISTED, At, Source, scope_of, scoped, visible_to
from propdev.management import operator
from propdev.security import (
    RECOVERY_CODES_LOW,
    get_user,
    new_recovery_codes,
    open_audit_personal,
    recovery_codes_status,
    store_recovery_codes,
    vault_of,
)
from propdev.staff import Action, Kind, audit_within
from propdev.storage.audit import AuditRecord

routes = web.RouteTableDef()

MAX_FILTER = 200
# Actions are dotted snake_case words (``auth.login``, ``entry``); actors a kind and an id
# (``operator:<uuid>``, ``partner:sim``, ``operator:ext:<tag>:<sub>``, ``cli``): no spaces
# and no control characters.
ACTION_PATTERN = re.compile(r"[a-z0-9_.]+")
ACTOR_PATTERN = re.compile(r"[^\x00-\x20\x7f]+")


def _documented(pattern: re.Pattern[str]) -> str:
    """A filter's pattern as the document states it: anchored, and empty allowed (no filter)."""
    return f"^({pattern.pattern})?$"


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
    "Restart an activated actor (on_stop, new instance, on_start; audited)",
    description=(
        "Audited with actor `operator:<id>`, action `actor.restart`, before the restart: if "
        "the entry cannot be written, nothing is restarted."
    ),
    tags=["admin"],
    responses={
        200: schemas.object_of({"restarted": {"type": "string"}}, required=["restarted"]),
        404: "No such active actor.",
    },
)
async def restart_actor(request: web.Request) -> web.Response:
    actor_id = request.match_info["actor_id"]
    system = request.app[ACTOR_SYSTEM]
    if not system.is_active(actor_id):
        raise NotFoundError(f"No active actor {actor_id!r}.")
    caller = principal(request)
    await request.app[AUDIT].append(  # before the restart: an entry not written, no restart
        AuditRecord(
            at=time.time(),
            actor=operator(caller.sub),
            action="actor.restart",
            access_point_id=None,
            decision="granted",
            reason=f"actor_id={actor_id}",
            subject=caller.sub,
        )
    )
    try:
        await system.restart(actor_id)
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
    description=(
        "Filters combine (all must match): `access_point_id` exact, `action` a prefix "
        "(`auth.` matches `auth.login` and `auth.revoke`), `actor` exact (`operator:<id>`, "
        "`user:<id>`, `cli`, `system`...). The vocabulary of actions, decisions and reasons "
        "is docs/audit.md. `subject` is the person the entry concerns, `personal` the "
        "personal fields kept apart from the hash chain (null once erased or past retention)."
    ),
    tags=["admin"],
    query=[
        Param("limit", {"type": "integer", "minimum": 1, "maximum": 1000}),
        Param("after", {"type": "integer", "minimum": 0}),
        Param("access_point_id", description="only entries about this access point"),
        Param(
            "action",
            {"type": "string", "pattern": _documented(ACTION_PATTERN), "maxLength": MAX_FILTER},
            description="only entries whose action starts with this (`auth.`, `open`...)",
        ),
        Param(
            "actor",
            {"type": "string", "pattern": _documented(ACTOR_PATTERN), "maxLength": MAX_FILTER},
            description="only entries of this actor, exactly (`operator:<id>`, `cli`...)",
        ),
    ],
    responses={200: schemas.AUDIT_PAGE, 400: "A filter or paging parameter is malformed."},
)
async def audit(request: web.Request) -> web.Response:
    limit = int_param(request, "limit", 100, lo=1, hi=1000)
    after = int_param(request, "after", 0, lo=0, hi=2**62)
    access_point_id = request.query.get("access_point_id") or None
    action = _filter(request, "action", ACTION_PATTERN)
    actor = _filter(request, "actor", ACTOR_PATTERN)
    entries = await request.app[AUDIT].page(
        access_point_id=access_point_id,
        after=after,
        limit=limit + 1,
        action=action,
        actor=actor,
        within=audit_within(scope_of(request)),
        # The vault is looked up only for a sealed entry (format 4) on the page.
        open_personal=lambda row: open_audit_personal(vault_of(request.app[AUDIT].db), row),
    )
    more = len(entries) > limit
    entries = entries[:limit]
    return web.json_response(
        {"entries": entries, "next": entries[-1]["id"] if more and entries else None}
    )


def _filter(request: web.Request, name: str, pattern: re.Pattern[str]) -> str | None:
    """A filter's value (None: absent or empty); one given twice, too long or with characters
    no action or actor has is a 400."""
    values = request.query.getall(name, [])
    if len(values) > 1:
        raise BadRequestError(f"Query parameter {name!r} may be given once.")
    value = values[0] if values else ""
    if value == "":
        return None
    if len(value) > MAX_FILTER or pattern.fullmatch(value) is None:
        raise BadRequestError(
            f"Query parameter {name!r} must be at most {MAX_FILTER} characters "
            f"matching {pattern.pattern}."
        )
    return value


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
    await request.app[AUDIT].append(  # before the change, as a staff action (fail closed)
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
    await store_recovery_codes(db, caller.sub, codes)
    return web.json_response(
        {"recovery_codes": codes}, status=201, headers={"Cache-Control": "no-store"}
    )
