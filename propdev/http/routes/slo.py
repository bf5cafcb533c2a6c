"""``GET /admin/api/v1/slo``: each objective's SLI, error budget and burn rates (operators)."""

from __future__ import annotations

from aiohttp import web

from propdev.http import schemas
from propdev.http.keys import NODE_ID, SLO
from propdev.http.openapi import doc
from propdev.http.scope import LISTED, scoped
from propdev.staff import Action

routes = web.RouteTableDef()

_RATE = {"type": "number", "minimum": 0}
_WINDOWS = ("5m", "30m", "1h", "6h", "3d")

SLO_OBJECTIVE = schemas.named(
    "SloObjective",
    schemas.object_of(
        {
            "name": {"type": "string"},
            "integration": {"type": "string"},
            "sli_kind": {"enum": ["availability", "latency"]},
            "description": {"type": "string"},
            "routes": schemas.array_of({"type": "string"}),
            "objective": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1},
            "threshold_seconds": {"type": ["number", "null"]},
            "window_seconds": {"type": "number"},
            "measured_since": {"type": "number", "description": "Unix time the node started."},
            "good": {"type": "integer", "minimum": 0},
            "total": {"type": "integer", "minimum": 0},
            "bad": {"type": "integer", "minimum": 0},
            "sli": {
                "type": ["number", "null"],
                "description": "good / total over the window; null without traffic.",
            },
            "error_budget": schemas.object_of(
                {
                    "allowed_bad_ratio": {"type": "number"},
                    "allowed_bad_events": {"type": "number"},
                    "spent_ratio": {"type": "number"},
                    "remaining_ratio": {
                        "type": "number",
                        "description": "1 - spent; negative once the budget is overspent.",
                    },
                }
            ),
            "burn_rates": {
                "type": "object",
                "required": list(_WINDOWS),
                "properties": {w: _RATE for w in _WINDOWS},
            },
            "alerts": schemas.array_of(
                schemas.object_of(
                    {
                        "name": {"type": "string"},
                        "severity": {"enum": ["page", "ticket"]},
                        "long_window": {"type": "string"},
                        "short_window": {"type": "string"},
                        "burn_rate_threshold": {"type": "number"},
                        "firing": {"type": "boolean"},
                    }
                )
            ),
        },
        required=[
            "name",
            "integration",
            "sli_kind",
            "objective",
            "window_seconds",
            "good",
            "total",
            "sli",
            "error_budget",
            "burn_rates",
            "alerts",
        ],
    ),
)

SLO_REPORT = schemas.named(
    "SloReport",
    schemas.object_of(
        {
            "node": {"type": "string"},
            "scope": {
                "enum": ["cluster", "node"],
                "description": "cluster: every node's counts (in Redis); node: this node's "
                "(embedded, or the cluster's Redis unreachable).",
            },
            "objectives": schemas.array_of(SLO_OBJECTIVE),
        },
        required=["node", "scope", "objectives"],
    ),
)


@routes.get("/admin/api/v1/slo")
@scoped(Action.SYSTEM_READ, LISTED)
@doc(
    "Service level objectives: SLI, error budget left, multi-window burn rates",
    description=(
        "In a cluster, computed from every node's counts, added up in the cluster's Redis "
        "(scope cluster); embedded, from the requests this node answered since it started "
        "(see docs/observability.md). Prometheus with "
        "deploy/prometheus/propdev-slo.rules.yml gives the same numbers across restarts."
    ),
    tags=["admin"],
    responses={200: SLO_REPORT},
)
async def slo(request: web.Request) -> web.Response:
    scope, objectives = await request.app[SLO].current()
    return web.json_response(
        {"node": request.app[NODE_ID], "scope": scope, "objectives": objectives}
    )
