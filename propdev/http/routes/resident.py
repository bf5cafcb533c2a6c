"""The resident API: who am I, my access points, open one, my events, my commands."""

from __future__ import annotations

from aiohttp import web

from propdev.actors.messages import DeviceSnapshot
from propdev.http import schemas
from propdev.http.body import json_body
from propdev.http.errors import BadRequestError, NotFoundError
from propdev.http.keys import COMMANDS, DATABASE, DEVICES, DIRECTORY, EVENTS, OPENER
from propdev.http.middlewares import principal
from propdev.http.open_outcomes import open_message, open_response
from propdev.http.openapi import Param, Response, doc
from propdev.http.permissions import Permission, requires
from propdev.security import get_user

routes = web.RouteTableDef()

MAX_PAGE = 500


def int_param(request: web.Request, name: str, default: int, *, lo: int, hi: int) -> int:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadRequestError(f"Query parameter {name!r} must be an integer.") from None
    if not lo <= value <= hi:
        raise BadRequestError(f"Query parameter {name!r} must be between {lo} and {hi}.")
    return value


@routes.get("/api/v1/me")
@requires(Permission.AUTHENTICATED)
@doc("Who am I", tags=["resident"], responses={200: schemas.ME, 404: "The account is gone."})
async def me(request: web.Request) -> web.Response:
    caller = principal(request)
    if "external_sub" in caller.claims:  # an external OIDC issuer's user: no local account
        return web.json_response(
            {
                "id": caller.sub,
                "username": str(caller.claims["external_sub"]),
                "roles": sorted(caller.roles),
                "full_name": None,
                "amr": sorted(caller.amr),
                "issuer": str(caller.claims["iss"]),
            }
        )
    user = await get_user(request.app[DATABASE], caller.sub)  # personal data sealed at rest
    if user is None:
        raise NotFoundError("Your account no longer exists.")
    return web.json_response(
        {
            "id": user.id,
            "username": user.username,
            "roles": list(user.roles),
            "full_name": user.full_name,
            "amr": sorted(caller.amr),
        }
    )


@routes.get("/api/v1/access-points")
@requires(Permission.RESIDENT)
@doc(
    "The access points this resident may open",
    tags=["resident"],
    responses={200: schemas.array_of(schemas.ACCESS_POINT)},
)
async def list_access_points(request: web.Request) -> web.Response:
    points = await request.app[DIRECTORY].access_points_of(principal(request).sub)
    presence = await request.app[DEVICES].device_presence([p.id for p in points])
    return web.json_response(
        [
            {
                "id": p.id,
                "name": p.name,
                "kind": p.kind,
                "site_id": p.site_id,
                "building_id": p.building_id,
                **presence[p.id],  # online (true/false/null), state, last_seen_age_s
            }
            for p in points
        ]
    )


@routes.post("/api/v1/access-points/{id}/open")
@requires(Permission.RESIDENT)
@doc(
    "Open an access point",
    description=(
        "Answers 200 once the partner confirmed. The same `Idempotency-Key` within 24 h "
        "returns the first answer (with `Idempotent-Replayed: true`) and sends no second command. "
        "It takes no body: none, or `{}`; any other body is a 400 and nothing opens."
    ),
    tags=["resident"],
    request={"type": "object", "maxProperties": 0},
    request_required=False,
    headers=[Param("Idempotency-Key", {"type": "string", "minLength": 1, "maxLength": 255})],
    responses={
        200: Response(
            schemas.OPEN_GRANTED,
            "Granted: the partner confirmed.",
            headers={"Idempotent-Replayed": "`true` when this is a stored answer"},
        ),
        400: "Malformed `Idempotency-Key`, or a body other than none or `{}`.",
        403: "Our rules deny it, or the device vendor refused.",
        404: "No such access point.",
        502: "The partner failed.",
        503: Response(
            schemas.PROBLEM,
            "The partner's circuit is open, or it is busy; the door's node or the store "
            "cannot be reached (`cluster-unavailable`, `store-unavailable`).",
            "application/problem+json",
            {"Retry-After": "seconds to wait"},
        ),
        504: "The partner did not answer in time.",
    },
)
async def open_access_point(request: web.Request) -> web.Response:
    caller = principal(request)
    access_point_id = request.match_info["id"]
    key = request.headers.get("Idempotency-Key")
    if key is not None and not (0 < len(key) <= 255 and key.isprintable()):
        raise BadRequestError("Idempotency-Key must be 1 to 255 printable characters.")
    if await json_body(request, required=False, absent={}) != {}:  # and nothing opens
        raise BadRequestError("This call takes no body: send none, or {}.")
    if await request.app[DIRECTORY].access_point(access_point_id) is None:  # no stray actor
        raise NotFoundError(f"No access point {access_point_id!r}.")
    # The door's actor decides (our rules), commands, records and publishes: one pipeline.
    message = open_message(caller, access_point_id, idempotency_key=key)
    outcome = await request.app[OPENER].open(message)
    return open_response(outcome)


@routes.get("/api/v1/access-points/{id}")
@requires(Permission.RESIDENT)
@doc(
    "One of my access points, with its device's live state",
    tags=["resident"],
    responses={200: schemas.ACCESS_POINT_DETAIL, 404: "No such access point (or not yours)."},
)
async def get_access_point(request: web.Request) -> web.Response:
    directory = request.app[DIRECTORY]
    access_point_id = request.match_info["id"]
    if not await directory.may_open(principal(request).sub, access_point_id):
        raise NotFoundError(f"No access point {access_point_id!r}.")
    point = await directory.access_point(access_point_id)
    if point is None:
        raise NotFoundError(f"No access point {access_point_id!r}.")
    devices = request.app[DEVICES]  # its owner's actor, in a cluster
    state = await devices.ask_device(f"device:{access_point_id}", DeviceSnapshot())
    assert isinstance(state, dict)
    return web.json_response(
        {
            "id": point.id,
            "name": point.name,
            "kind": point.kind,
            "site_id": point.site_id,
            "building_id": point.building_id,
            **{k: v for k, v in state.items() if k != "access_point_id"},
        }
    )


@routes.get("/api/v1/events")
@requires(Permission.RESIDENT)
@doc(
    "My events, oldest first",
    tags=["resident"],
    query=[
        Param("after", {"type": "integer", "minimum": 0}, description="only events after this id"),
        Param("limit", {"type": "integer", "minimum": 1, "maximum": MAX_PAGE}),
    ],
    responses={200: schemas.array_of(schemas.EVENT)},
)
async def list_events(request: web.Request) -> web.Response:
    after = int_param(request, "after", 0, lo=0, hi=2**62)
    limit = int_param(request, "limit", 100, lo=1, hi=MAX_PAGE)
    events = await request.app[EVENTS].page(principal(request).sub, after=after, limit=limit)
    return web.json_response(events)


@routes.get("/api/v1/commands/{id}")
@requires(Permission.RESIDENT)
@doc(
    "One of my commands",
    tags=["resident"],
    responses={200: schemas.COMMAND, 404: "No such command (or not yours)."},
)
async def get_command(request: web.Request) -> web.Response:
    commands = request.app[COMMANDS]
    command = await commands.get(request.match_info["id"])
    if command is None or command["user_id"] != principal(request).sub:
        raise NotFoundError("No such command.")
    steps = await commands.steps(command["id"])  # requested → … → confirmed|failed → entry
    passages = [s for s in steps if s["step"] in ("entry", "exit")]
    return web.json_response(
        {
            "id": command["id"],
            "access_point_id": command["access_point_id"],
            "status": command["status"],
            "reason": command["reason"],
            "vendor_command_id": command["vendor_command_id"],
            "created_at": command["created_at"],
            "updated_at": command["updated_at"],
            "steps": steps,
            "passage": {"type": passages[0]["step"], "at": passages[0]["at"]} if passages else None,
        }
    )
