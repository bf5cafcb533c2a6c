"""``/gateway/v1/utilities``: a resident's bills and meter readings, proxied to the
housing-and-utilities (ЖКХ) system.

The usual middlewares apply (resident token, rate limit, access log, telemetry: these routes
feed the ``utilities_gateway`` SLOs). The apartment is the caller's (from the token, never from
the request). Upstream failures answer as the partners' do: 502 (unusable answer), 503 +
``Retry-After`` (circuit open or too many calls in flight), 504 (no answer in time).
"""

from __future__ import annotations

import math
import re
from decimal import Decimal
from typing import Any

from aiohttp import web

from propdev.housing import KINDS, InvalidReadingError, NoAccountError
from propdev.http import schemas
from propdev.http.access_problems import UnprocessableError
from propdev.http.body import json_body
from propdev.http.errors import BadRequestError, NotFoundError, ProblemError
from propdev.http.keys import UTILITIES
from propdev.http.middlewares import principal
from propdev.http.openapi import Param, Response, doc
from propdev.http.permissions import Permission, requires
from propdev.partners import (
    BulkheadFullError,
    CircuitOpenError,
    PartnerError,
    PartnerRefusedError,
    PartnerTimeoutError,
)

routes = web.RouteTableDef()

PERIOD = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")
MAX_KEY = 128


class BadGatewayError(ProblemError):
    """Raised when the utilities system gave no usable answer."""

    status, kind, title = 502, "upstream-failed", "Bad gateway"


class GatewayTimeoutError(ProblemError):
    """Raised when the utilities system did not answer in time."""

    status, kind, title = 504, "upstream-timeout", "Gateway timeout"


class UpstreamUnavailableError(ProblemError):
    """Raised while the utilities system's circuit is open or its bulkhead is full."""

    status, kind, title = 503, "upstream-unavailable", "Service unavailable"


ACCOUNT_PROPERTIES: dict[str, Any] = {
    "account_id": {"type": "string", "description": "the account at the utilities system"},
    "apartment_id": schemas.STRING,
    "building_id": schemas.STRING,
    "apartment": {"type": "string", "description": "the apartment's number"},
}
MONEY = {"type": "string", "pattern": r"^\d+\.\d{2}$", "examples": ["4312.55"]}
BILLS = schemas.named(
    "UtilityBills",
    schemas.object_of(
        {
            **ACCOUNT_PROPERTIES,
            "bills": schemas.array_of(
                schemas.object_of(
                    {
                        "id": schemas.STRING,
                        "period": {"type": "string", "examples": ["2026-10"]},
                        "amount": MONEY,
                        "currency": {"type": "string", "examples": ["RUB"]},
                        "due_date": {"type": "string", "format": "date"},
                        "status": {"type": "string", "enum": ["paid", "unpaid"]},
                        "lines": schemas.array_of(
                            schemas.object_of({"service": schemas.STRING, "amount": MONEY})
                        ),
                    },
                    required=["id", "period", "amount", "currency", "status"],
                )
            ),
        },
        required=["account_id", "apartment_id", "bills"],
    ),
)
VALUE = {
    "type": "string",
    "description": "The meter's value, at most 3 decimals, as a decimal string.",
    "examples": ["231.405"],
}
METERS = schemas.named(
    "UtilityMeters",
    schemas.object_of(
        {
            **ACCOUNT_PROPERTIES,
            "meters": schemas.array_of(
                schemas.object_of(
                    {
                        "id": schemas.STRING,
                        "type": {"type": "string", "enum": sorted(str(t) for t in KINDS)},
                        "unit": {"type": "string", "enum": ["m3", "kWh", "Gcal"]},
                        "serial": schemas.STRING,
                        "last_value": {**VALUE, "type": ["string", "null"]},
                        "last_taken_at": {"type": ["string", "null"], "format": "date-time"},
                    },
                    required=["id", "type", "unit"],
                )
            ),
        },
        required=["account_id", "meters"],
    ),
)
READING_REQUEST = schemas.named(
    "MeterReadingRequest",
    schemas.object_of(
        {
            "meter_id": {"type": "string", "description": "one of your apartment's meters"},
            "value": {
                "type": ["number", "string"],
                "pattern": r"^[0-9]+(\.[0-9]+)?$",
                "maxLength": 32,  # meters.MAX_TEXT_VALUE
                "description": (
                    "What the meter shows: 0 up to its counter's maximum (m³ for water, kWh for "
                    "electricity day/night, Gcal for heat), at most 3 decimals, not below the "
                    "last accepted reading and not an implausible jump since it. As a string: "
                    "ASCII digits with an optional fraction."
                ),
                "examples": [231.9, "8420.125"],
            },
            "taken_at": {
                "type": "string",
                "format": "date-time",
                "description": "When it was read (default: now); not in the future.",
            },
        },
        required=["meter_id", "value"],
        additional=False,
    ),
)
READING = schemas.named(
    "MeterReading",
    schemas.object_of(
        {
            "id": schemas.STRING,
            "status": {"type": "string", "enum": ["accepted"]},
            "meter_id": schemas.STRING,
            "value": VALUE,
            "taken_at": {"type": "string", "format": "date-time"},
            "account_id": schemas.STRING,
            "upstream_id": {"type": "string", "description": "the utilities system's id"},
            "accepted_at": {"type": "string", "format": "date-time"},
            "idempotency_key": schemas.STRING,
        },
        required=["id", "status", "meter_id", "value", "taken_at", "account_id"],
    ),
)
INVALID_READING = schemas.named(
    "InvalidMeterReading",
    {
        "allOf": [
            schemas.PROBLEM,
            schemas.object_of(
                {
                    "field": {
                        "type": "string",
                        "description": "`meter_id`, `value`, `taken_at` or `body`",
                    },
                    "reason": {
                        "type": "string",
                        "examples": [
                            "below_last_reading",
                            "out_of_range",
                            "too_many_decimals",
                            "implausible_increase",
                            "not_your_meter",
                            "in_the_future",
                        ],
                    },
                    "last_value": VALUE,
                },
                required=["field", "reason"],
            ),
        ]
    },
)
UPSTREAM_ERRORS: dict[int, Any] = {
    404: "No utilities account is linked to your apartment.",
    502: "The utilities system gave no usable answer.",
    503: Response(
        schemas.PROBLEM,
        "The utilities system's circuit is open (or too many calls are in flight).",
        "application/problem+json",
        headers={"Retry-After": "Seconds until a call may be tried again."},
    ),
    504: "The utilities system did not answer in time.",
}


def upstream_problem(exc: PartnerError) -> ProblemError:
    if isinstance(exc, CircuitOpenError):
        wait = str(max(1, math.ceil(exc.retry_after)))
        return UpstreamUnavailableError(
            "The utilities system is unavailable; try again later.",
            headers={"Retry-After": wait},
        )
    if isinstance(exc, BulkheadFullError):
        return UpstreamUnavailableError(
            "Too many calls to the utilities system.", headers={"Retry-After": "1"}
        )
    if isinstance(exc, PartnerTimeoutError):
        return GatewayTimeoutError("The utilities system did not answer in time.")
    if isinstance(exc, PartnerRefusedError):
        return BadGatewayError(f"The utilities system refused the call ({exc.reason}).")
    return BadGatewayError("The utilities system gave no usable answer.")


def invalid_reading(exc: InvalidReadingError) -> UnprocessableError:
    return UnprocessableError(
        f"{exc.field}: {exc.detail}",
        extra={"field": exc.field, "reason": exc.reason, **exc.extra},
    )


@routes.get("/gateway/v1/utilities/bills")
@requires(Permission.RESIDENT)
@doc(
    "Your apartment's utility bills",
    description=(
        "The bills of the apartment you live in, from the housing-and-utilities system, newest "
        "first. No parameter names an account: you only ever see your own."
    ),
    tags=["utilities"],
    query=[Param("period", {"type": "string", "pattern": PERIOD.pattern}, description="YYYY-MM")],
    responses={200: BILLS, **UPSTREAM_ERRORS},
)
async def get_bills(request: web.Request) -> web.Response:
    caller = principal(request)
    period = request.query.get("period")
    if period is not None and not PERIOD.match(period):
        raise BadRequestError("period: expected YYYY-MM.")
    try:
        found = await request.app[UTILITIES].bills(caller.sub, period)
    except NoAccountError as exc:
        raise NotFoundError(str(exc).capitalize() + ".") from None
    except PartnerError as exc:
        raise upstream_problem(exc) from exc
    return web.json_response(found)


@routes.get("/gateway/v1/utilities/meters")
@requires(Permission.RESIDENT)
@doc(
    "Your apartment's meters",
    description="Each meter of your apartment with its last accepted reading (from our records).",
    tags=["utilities"],
    responses={200: METERS, 404: UPSTREAM_ERRORS[404]},
)
async def get_meters(request: web.Request) -> web.Response:
    caller = principal(request)
    try:
        found = await request.app[UTILITIES].meters(caller.sub)
    except NoAccountError as exc:
        raise NotFoundError(str(exc).capitalize() + ".") from None
    return web.json_response(found)


@routes.post("/gateway/v1/utilities/meter-readings")
@requires(Permission.RESIDENT)
@doc(
    "Submit a meter reading",
    description=(
        "Checked before it is forwarded: the meter is one of your apartment's; the value is in "
        "the meter's range, has at most 3 decimals, is not below the meter's last accepted "
        "reading and not an implausible jump since it; `taken_at` is not in the future. A bad "
        "reading is a 422 whose `field` names what is wrong. A good one is forwarded with an "
        "idempotency key, stored and audited. The same `Idempotency-Key` again answers the "
        "first answer (`Idempotent-Replayed: true`) and sends nothing."
    ),
    tags=["utilities"],
    request=READING_REQUEST,
    headers=[Param("Idempotency-Key", description="1 to 128 printable characters")],
    responses={
        201: Response(READING, "Accepted by the utilities system."),
        422: Response(INVALID_READING, "The reading is not valid.", "application/problem+json"),
        **UPSTREAM_ERRORS,
    },
)
async def post_meter_reading(request: web.Request) -> web.Response:
    caller = principal(request)
    key = request.headers.get("Idempotency-Key")
    if key is not None and not (0 < len(key) <= MAX_KEY and key.isprintable()):
        raise BadRequestError(f"Idempotency-Key: 1 to {MAX_KEY} printable characters.")
    body = await json_body(request, required=False, parse_float=Decimal)  # none: a 422
    try:
        answer, replayed = await request.app[UTILITIES].submit(caller.sub, body, key)
    except NoAccountError as exc:
        raise NotFoundError(str(exc).capitalize() + ".") from None
    except InvalidReadingError as exc:
        raise invalid_reading(exc) from None
    except PartnerError as exc:
        raise upstream_problem(exc) from exc
    headers = {"Idempotent-Replayed": "true"} if replayed else {}
    return web.json_response(answer, status=201, headers=headers)
