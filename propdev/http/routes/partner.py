"""The partner API: ``POST /partner/v1/events``, the callbacks vendors send us.

Authentication is ``partner_auth`` (certificate + bound token + registered partner +
allowlist) and a Standard-Webhooks signature of the body (``propdev.partners.signing``) with
the partner's secret. The batch is applied by ``PartnerEventIngest``: 202 with the counts, each
rejected event with its index and reason; a replayed ``event_id`` is a duplicate.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from propdev.devices import EVENT_TYPES, MAX_EVENTS, IngestUnavailableError
from propdev.http import schemas
from propdev.http.body import check_media_type, parse_json
from propdev.http.errors import BadRequestError, ServiceUnavailableError, UnauthorizedError
from propdev.http.keys import DATABASE, EVENT_INGEST, PKI_DIR, WEBHOOK_SECRETS
from propdev.http.openapi import Param, doc
from propdev.http.partner_auth import authenticate_partner
from propdev.http.permissions import Permission, requires
from propdev.partners import verify_callback

routes = web.RouteTableDef()

PARTNER_EVENT = schemas.named(
    "PartnerEvent",
    schemas.object_of(
        {
            "event_id": {"type": "string", "maxLength": 128},
            "device_id": {"type": "string", "maxLength": 128},
            "type": {"type": "string", "enum": sorted(EVENT_TYPES)},
            "occurred_at": {
                "type": ["string", "number"],
                "description": "ISO 8601 time with a zone, or epoch seconds",
            },
            "plate": {"type": "string", "description": "`plate_recognized` (and barrier entries)"},
            "code": {"type": "string", "description": "`pass_presented`"},
            "request_id": {"type": "string", "description": "our command id (entry/exit)"},
            "vendor_command_id": {"type": "string", "description": "the vendor's command id"},
            "ticket": {"type": "string", "description": "`command_result`: the vendor's ticket"},
            "result": {"type": "string", "enum": ["done", "failed"]},
            "error": {"type": "string", "description": "`command_result` failed: vendor's code"},
        },
        required=["event_id", "device_id", "type", "occurred_at"],
        additional=True,
    ),
)
PARTNER_EVENTS = schemas.named(
    "PartnerEvents",
    schemas.object_of(
        {
            "events": {
                "type": "array",
                "items": PARTNER_EVENT,
                "minItems": 1,
                "maxItems": MAX_EVENTS,
            }
        },
        required=["events"],
    ),
)
PARTNER_EVENTS_ACCEPTED = schemas.named(
    "PartnerEventsAccepted",
    schemas.object_of(
        {
            "accepted": schemas.INTEGER,
            "duplicates": schemas.INTEGER,
            "rejected": schemas.array_of(
                schemas.object_of(
                    {
                        "index": schemas.INTEGER,
                        "event_id": schemas.STRING,
                        "reason": schemas.STRING,
                    },
                    required=["index", "reason"],
                )
            ),
        },
        required=["accepted", "duplicates", "rejected"],
    ),
)


def _signature_header(name: str, description: str) -> Param:
    return Param(name, where="header", required=True, description=description)


@routes.post("/partner/v1/events")
@requires(Permission.PARTNER)
@doc(
    "Report device events (partners)",
    description=(
        "mTLS with the partner's client certificate from the project CA, a `client_credentials` "
        "token bound to it, from the partner's allowlist, and the body signed "
        "(Standard Webhooks: `webhook-signature: v1,<base64 HMAC-SHA256>` over "
        "`<webhook-id>.<webhook-timestamp>.<body>`). Events are applied in order per device; "
        "an `event_id` seen before counts as a duplicate and changes nothing; a bad event is "
        "rejected alone, with its index and reason."
    ),
    tags=["partner"],
    request=PARTNER_EVENTS,
    headers=[
        _signature_header("webhook-id", "the delivery's id"),
        _signature_header("webhook-timestamp", "epoch seconds of the signature"),
        _signature_header("webhook-signature", "`v1,<base64 HMAC-SHA256>`"),
    ],
    responses={
        202: PARTNER_EVENTS_ACCEPTED,
        400: "The body is not a batch of events.",
        413: "The body is too large.",
        503: "A device did not take its events in time; retry (replays are duplicates).",
    },
)
async def post_events(request: web.Request) -> web.Response:
    app = request.app
    caller = await authenticate_partner(request, app[DATABASE], pki_dir=app[PKI_DIR])
    body = await request.read()
    problem = verify_callback(app[WEBHOOK_SECRETS](caller.partner_id), request.headers, body)
    if problem is not None:
        raise UnauthorizedError(f"The body's signature is not valid: {problem}.")
    check_media_type(request)
    events = _batch(body)
    try:
        result = await app[EVENT_INGEST].ingest(caller.partner_id, events)
    except IngestUnavailableError as exc:
        raise ServiceUnavailableError(str(exc), headers={"Retry-After": "1"}) from exc
    return web.json_response(result.as_dict(), status=202)


def _batch(body: bytes) -> list[Any]:
    parsed = parse_json(body)
    events = parsed.get("events") if isinstance(parsed, dict) else None
    if not isinstance(events, list) or not 0 < len(events) <= MAX_EVENTS:
        raise BadRequestError(f'Expected {{"events": [...]}} with 1 to {MAX_EVENTS} events.')
    return events
