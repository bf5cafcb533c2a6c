"""Operators' actions of the supervision console: revoking anyone's guest pass and draining
this node. Both are audited as ``operator:<id>``: the revocation in its transaction, the
drain before it starts (an entry that cannot be written fails the request, nothing drained)."""

from __future__ import annotations

import time

import structlog
from aiohttp import web

from propdev.access import PassNotFoundError
from propdev.http import schemas
from propdev.http.access_problems import ConflictError
from propdev.http.errors import BadRequestError, NotFoundError
from propdev.http.keys import AUDIT, DRAIN, NODE_ID, NODES, PASSES
from propdev.http.middlewares import principal
from propdev.http.openapi import Param, doc
from propdev.http.routes.passes import GUEST_PASS
from propdev.http.routes.resident import int_param
from propdev.http.scope import LISTED, ORGANISATION_ONLY, At, Source, scope_of, scoped
from propdev.management import operator
from propdev.staff import Action, Kind
from propdev.storage.audit import AuditRecord

log = structlog.get_logger()
routes = web.RouteTableDef()

OPERATOR_GUEST_PASS = schemas.named(
    "OperatorGuestPass",
    {
        "allOf": [GUEST_PASS],
        "type": "object",
        "required": ["owner_id"],
        "properties": {"owner_id": {"type": "string", "description": "The issuing resident."}},
    },
)
DRAINED = schemas.named(
    "NodeDrained",
    schemas.object_of(
        {
            "node_id": schemas.STRING,
            "draining": {"const": True},
            "already": {
                "type": "boolean",
                "description": "It was drained before; nothing was done again.",
            },
            "shards_handed_off": schemas.INTEGER,
            "actors_passivated": schemas.INTEGER,
        },
        required=["node_id", "draining"],
    ),
)


def _active(request: web.Request) -> bool | None:
    raw = request.query.get("active", "")
    if raw == "":
        return None
    if raw in ("true", "false"):
        return raw == "true"
    raise BadRequestError("Query parameter 'active' must be true or false.")


@routes.get("/admin/api/v1/guest-passes")
@scoped(Action.PASSES_READ, At(Kind.RESIDENT, "owner", Source.QUERY), LISTED)
@doc(
    "Every resident's guest passes (never their codes), newest first",
    tags=["admin", "guest passes"],
    query=[
        Param("owner", description="only the passes of this resident (user id)"),
        Param(
            "active",
            {"type": "string", "enum": ["true", "false"]},
            description=(
                "`true`: only passes that can still be used (not revoked, expired or used "
                "up; scheduled ones included); `false`: only the others"
            ),
        ),
        Param("limit", {"type": "integer", "minimum": 1, "maximum": 1000}),
    ],
    responses={200: schemas.array_of(OPERATOR_GUEST_PASS)},
)
async def list_guest_passes(request: web.Request) -> web.Response:
    passes = request.app[PASSES]
    found = await passes.find(
        owner_id=request.query.get("owner") or None,
        active=_active(request),
        limit=int_param(request, "limit", 200, lo=1, hi=1000),
        sites=scope_of(request).site_ids,
    )
    now = passes.clock()
    return web.json_response([{**p.to_json(now), "owner_id": p.owner_id} for p in found])


@routes.delete("/admin/api/v1/guest-passes/{id}")
@scoped(Action.PASSES_MANAGE, At(Kind.GUEST_PASS))
@doc(
    "Revoke any resident's guest pass (audited)",
    description=(
        "The code stops working at once, on every node (each presentation reads the store). "
        "Audited with actor `operator:<id>`, action `guest_pass.revoke`; revoking a revoked "
        "pass is a 204 and adds no entry."
    ),
    tags=["admin", "guest passes"],
    responses={204: None, 404: "No such guest pass."},
)
async def revoke_guest_pass(request: web.Request) -> web.Response:
    caller = principal(request)
    pass_id = request.match_info["id"]
    try:
        await request.app[PASSES].revoke(None, pass_id, actor=operator(caller.sub))
    except PassNotFoundError:
        raise NotFoundError("No such guest pass.") from None
    log.info("guest_pass_revoked_by_operator", pass_id=pass_id, operator=caller.sub)
    return web.Response(status=204)


@routes.post("/admin/api/v1/nodes/{node_id}/drain")
@scoped(Action.SYSTEM_OPERATE, ORGANISATION_ONLY)
@doc(
    "Drain this node: no new device work, then ready to be stopped (audited)",
    description=(
        "Only the node that answers can be drained: the embedded default, or this node of a "
        "cluster (call it through its own address, as `GET /admin/api/v1/nodes` lists it). "
        "Opens then answer 503 here (in a cluster they are forwarded to the shards' new "
        "owners), the device actors are passivated with their state saved, a cluster node "
        "hands its shards off (it stays a member that announces `draining` and owns none), "
        "and `/readyz` answers 503 with "
        "`draining: true` so that the load balancer takes the node out. There is no undrain: "
        "restart the process. Audited with actor `operator:<id>`, action `node.drain`."
    ),
    tags=["admin"],
    responses={
        200: DRAINED,
        404: "No such node.",
        409: "Another node of the cluster: drain that node through its own address.",
    },
)
async def drain_node(request: web.Request) -> web.Response:
    caller = principal(request)
    node_id = request.match_info["node_id"]
    if node_id != request.app[NODE_ID]:
        peer = request.app[NODES].peer(node_id)
        if peer is not None:
            url = peer.get("url")
            raise ConflictError(
                "Drain that node through its own address" + (f" ({url})." if url else "."),
                extra={"node_id": node_id, "url": url},
            )
        raise NotFoundError(f"No node {node_id!r}.")
    drain = request.app[DRAIN]
    if not drain.draining:  # audited before it happens: no entry, no drain
        await request.app[AUDIT].append(
            AuditRecord(
                at=time.time(),
                actor=operator(caller.sub),
                action="node.drain",
                access_point_id=None,
                decision="granted",
                reason=f"node_id={node_id}",
                subject=caller.sub,
            )
        )
    outcome = await drain.drain()
    log.warning("node_drained_by_operator", node_id=node_id, operator=caller.sub)
    return web.json_response(outcome)
