"""``/api/v1/vehicles``: a resident's cars, whose plates open the barrier on their own."""

from __future__ import annotations

import structlog
from aiohttp import web

from propdev.access import (
    InvalidFieldError,
    PlateTakenError,
    TooManyVehiclesError,
    VehicleNotFoundError,
)
from propdev.http import schemas
from propdev.http.access_problems import ConflictError, invalid
from propdev.http.body import json_body
from propdev.http.errors import NotFoundError
from propdev.http.keys import VEHICLES
from propdev.http.middlewares import principal
from propdev.http.openapi import Response, doc
from propdev.http.permissions import Permission, requires

log = structlog.get_logger()
routes = web.RouteTableDef()

VEHICLE_REQUEST = schemas.named(
    "VehicleRequest",
    schemas.object_of(
        {
            "plate": {
                "type": "string",
                "examples": ["A123BC77", "a 123 bc 777"],
                "description": (
                    "Case, spaces and dashes do not matter; Cyrillic letters that look Latin "
                    "are the same letter. 4 to 10 letters and digits, at least one of each."
                ),
            }
        },
        required=["plate"],
    ),
)

VEHICLE = schemas.named(
    "Vehicle",
    schemas.object_of(
        {
            "id": schemas.STRING,
            "plate": {"type": "string", "description": "Normalised: A123BC77."},
            "created_at": schemas.NUMBER,
        },
        required=["id", "plate"],
    ),
)


@routes.post("/api/v1/vehicles")
@requires(Permission.RESIDENT)
@doc(
    "Register a vehicle",
    description=(
        "From then on the barrier opens for this plate when its camera recognises it and the "
        "resident may use the barrier (schedules apply); the resident is told "
        "(`access.automatic`). The same plate again answers 200 with the existing vehicle. "
        "A new vehicle is audited (action `vehicle.register`, actor `user:<id>`, the "
        "vehicle's id, never the plate); a refusal (409) too, `denied` (`plate_taken`, "
        "`too_many_vehicles`)."
    ),
    tags=["vehicles"],
    request=VEHICLE_REQUEST,
    responses={
        201: Response(VEHICLE, "Registered.", headers={"Location": "The vehicle's URL."}),
        200: Response(VEHICLE, "Already registered by the caller."),
        409: "Registered by another resident, or too many vehicles.",
        422: "Not a plate (`field` names it).",
    },
)
async def register_vehicle(request: web.Request) -> web.Response:
    caller = principal(request)
    body = await json_body(request)
    if not isinstance(body, dict):
        raise invalid(InvalidFieldError("body", "expected a JSON object"))
    try:
        vehicle, new = await request.app[VEHICLES].register(caller.sub, body.get("plate"))
    except InvalidFieldError as exc:
        raise invalid(exc) from None
    except PlateTakenError:
        raise ConflictError(
            "This plate is registered by another resident.", extra={"field": "plate"}
        ) from None
    except TooManyVehiclesError as exc:
        raise ConflictError(str(exc)) from None
    if new:
        log.info("vehicle_registered", vehicle_id=vehicle.id, owner=caller.sub)
    return web.json_response(
        vehicle.to_json(),
        status=201 if new else 200,
        headers={"Location": f"/api/v1/vehicles/{vehicle.id}"},
    )


@routes.get("/api/v1/vehicles")
@requires(Permission.RESIDENT)
@doc("The caller's vehicles", tags=["vehicles"], responses={200: schemas.array_of(VEHICLE)})
async def list_vehicles(request: web.Request) -> web.Response:
    found = await request.app[VEHICLES].of(principal(request).sub)
    return web.json_response([v.to_json() for v in found])


@routes.delete("/api/v1/vehicles/{id}")
@requires(Permission.RESIDENT)
@doc(
    "Remove a vehicle",
    description=(
        "Its plate no longer opens anything, at once. Audited (action `vehicle.remove`, the "
        "vehicle's id)."
    ),
    tags=["vehicles"],
    responses={204: None, 404: "No such vehicle of the caller."},
)
async def remove_vehicle(request: web.Request) -> web.Response:
    caller = principal(request)
    vehicle_id = request.match_info["id"]
    try:
        await request.app[VEHICLES].remove(caller.sub, vehicle_id)
    except VehicleNotFoundError:
        raise NotFoundError("No such vehicle.") from None
    log.info("vehicle_removed", vehicle_id=vehicle_id, owner=caller.sub)
    return web.Response(status=204)
