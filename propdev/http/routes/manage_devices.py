"""``/admin/api/v1/access-points`` and ``/admin/api/v1/partners/{partner}/sync``: access points
and their devices, one by one, from CSV, or from a partner's own list."""

from __future__ import annotations

import email.parser
import email.policy

from aiohttp import web

from propdev.http import schemas
from propdev.http.body import UnsupportedMediaTypeError
from propdev.http.openapi import Param, Response, doc
from propdev.http.routes.manage_support import (
    CONFLICT,
    ID,
    INVALID,
    NAME,
    NULLABLE_NUMBER,
    TAGS,
    actor,
    body,
    flag_param,
    listed,
    management,
    text,
)
from propdev.http.scope import LISTED, ORGANISATION_ONLY, At, Source, scoped
from propdev.management import COLUMNS, MAX_LINES, InvalidFieldError, decode
from propdev.staff import Action, Kind

routes = web.RouteTableDef()

KIND = {"type": "string", "enum": ["door", "barrier"]}
DEVICE_ID = text(128)
MANAGED_POINT = schemas.named(
    "ManagedAccessPoint",
    schemas.object_of(
        {
            "id": schemas.STRING,
            "name": schemas.STRING,
            "kind": KIND,
            "site_id": schemas.STRING,
            "building_id": schemas.STRING,
            "partner": schemas.STRING,
            "device_id": schemas.STRING,
            "gone_at": {
                **NULLABLE_NUMBER,
                "description": "when a partner sync found the device gone (epoch seconds)",
            },
        },
        required=["id", "name", "kind", "site_id", "building_id", "partner", "device_id"],
    ),
)
POINT_REQUEST = schemas.named(
    "AccessPointRequest",
    schemas.object_of(
        {
            "id": ID,
            "name": NAME,
            "kind": KIND,
            "building_id": ID,
            "partner": ID,
            "device_id": DEVICE_ID,
        },
        required=["id", "name", "kind", "building_id", "partner", "device_id"],
        additional=False,
    ),
)
POINT_CHANGE = schemas.named(
    "AccessPointChange",
    schemas.object_of(
        {
            "name": NAME,
            "kind": KIND,
            "building_id": ID,
            "partner": ID,
            "device_id": DEVICE_ID,
        },
        additional=False,
    ),
)
DELETE_REPORT = schemas.named(
    "AccessPointDeleted",
    schemas.object_of(
        {
            "rights_ended": schemas.INTEGER,
            "passes_changed": {
                "type": "integer",
                "description": "guest passes that listed the access point",
            },
            "passes_revoked": {
                "type": "integer",
                "description": "of those, passes left with no access point (revoked)",
            },
        },
        required=["rights_ended", "passes_changed", "passes_revoked"],
    ),
)
IMPORT_REPORT = schemas.named(
    "ImportReport",
    schemas.object_of(
        {
            "dry_run": schemas.BOOLEAN,
            "summary": schemas.object_of(
                {k: schemas.INTEGER for k in ("added", "changed", "unchanged", "rejected")},
                required=["added", "changed", "unchanged", "rejected"],
            ),
            "lines": schemas.array_of(
                schemas.object_of(
                    {
                        "line": {"type": "integer", "description": "1 is the header"},
                        "outcome": {
                            "type": "string",
                            "enum": ["added", "changed", "unchanged", "rejected"],
                        },
                        "access_point_id": schemas.STRING,
                        "fields": schemas.array_of(schemas.STRING),
                        "reason": schemas.STRING,
                    },
                    required=["line", "outcome"],
                )
            ),
        },
        required=["dry_run", "summary", "lines"],
    ),
)
SYNC_REQUEST = schemas.named(
    "PartnerSyncRequest",
    schemas.object_of(
        {
            "apply": {"type": "boolean", "description": "false: a preview that changes nothing"},
            "building_id": {
                **ID,
                "description": "where new devices go; required to apply when there are any",
            },
        },
        required=["apply"],
        additional=False,
    ),
)
_SYNC_ENTRY: schemas.JSONSchema = schemas.object_of(
    {
        "access_point_id": schemas.STRING,
        "device_id": schemas.STRING,
        "kind": KIND,
        "name": schemas.STRING,
        "fields": schemas.array_of(schemas.STRING),
    },
    required=["access_point_id", "device_id"],
)
SYNC_REPORT = schemas.named(
    "PartnerSyncReport",
    schemas.object_of(
        {
            "partner": schemas.STRING,
            "applied": schemas.BOOLEAN,
            "added": schemas.array_of(_SYNC_ENTRY),
            "changed": schemas.array_of(_SYNC_ENTRY),
            "gone": schemas.array_of(_SYNC_ENTRY),
            "unchanged": schemas.array_of(schemas.STRING),
        },
        required=["partner", "applied", "added", "changed", "gone", "unchanged"],
    ),
)


@routes.get("/admin/api/v1/access-points")
@scoped(Action.ESTATE_READ, At(Kind.BUILDING, "building_id", Source.QUERY), LISTED)
@doc(
    "List access points with their devices",
    tags=TAGS,
    query=[
        Param("building_id", description="only those of this building"),
        Param("partner", description="only those of this partner"),
    ],
    responses={200: schemas.array_of(MANAGED_POINT)},
)
async def list_points(request: web.Request) -> web.Response:
    return await listed(request, management(request).points.list, "building_id", "partner")


@routes.post("/admin/api/v1/access-points")
@scoped(Action.ESTATE_MANAGE, At(Kind.BUILDING, "building_id", Source.BODY))
@doc(
    "Register a device as an access point",
    description=(
        "The building must exist (its site is the access point's), the partner must be "
        "registered, and the partner's device must not be another access point's (409, "
        "`field: device_id`). Audited as `access_point.create`."
    ),
    tags=TAGS,
    request=POINT_REQUEST,
    responses={201: MANAGED_POINT, 409: CONFLICT, 422: INVALID},
)
async def create_point(request: web.Request) -> web.Response:
    point = await management(request).points.create(actor(request), await body(request))
    return web.json_response(point.to_json(), status=201)


@routes.get("/admin/api/v1/access-points/{id}")
@scoped(Action.ESTATE_READ, At(Kind.ACCESS_POINT))
@doc(
    "One access point with its device",
    tags=TAGS,
    responses={200: MANAGED_POINT, 404: "No such access point."},
)
async def get_point(request: web.Request) -> web.Response:
    point = await management(request).points.get(request.match_info["id"])
    return web.json_response(point.to_json())


@routes.patch("/admin/api/v1/access-points/{id}")
@scoped(Action.ESTATE_MANAGE, At(Kind.ACCESS_POINT), At(Kind.BUILDING, "building_id", Source.BODY))
@doc(
    "Change an access point (name, kind, building, partner or device)",
    description="Audited as `access_point.update` with the changed fields.",
    tags=TAGS,
    request=POINT_CHANGE,
    responses={200: MANAGED_POINT, 404: "No such access point.", 409: CONFLICT, 422: INVALID},
)
async def update_point(request: web.Request) -> web.Response:
    point = await management(request).update_point(
        actor(request), request.match_info["id"], await body(request)
    )
    return web.json_response(point.to_json())


@routes.delete("/admin/api/v1/access-points/{id}")
@scoped(Action.ESTATE_MANAGE, At(Kind.ACCESS_POINT))
@doc(
    "Delete an access point, ending what depends on it",
    description=(
        "In one transaction: its rights are withdrawn, it leaves every guest pass (a pass left "
        "with no access point is revoked), its device state is forgotten. Its audit history "
        "stays. Audited as `access_point.delete` with the counts. To keep rights while a "
        "device is away, let a partner sync mark it gone instead."
    ),
    tags=TAGS,
    responses={200: DELETE_REPORT, 404: "No such access point."},
)
async def delete_point(request: web.Request) -> web.Response:
    report = await management(request).delete_point(actor(request), request.match_info["id"])
    return web.json_response(report)


@routes.post("/admin/api/v1/access-points/import")
@scoped(Action.ESTATE_MANAGE, ORGANISATION_ONLY)
@doc(
    "Bulk-import access points from CSV",
    description=(
        f"A `text/csv` body (or `multipart/form-data` with the file in part `file`) whose "
        f"header names the columns `{','.join(COLUMNS)}` in any order; at most {MAX_LINES} "
        "lines and the node's body limit (413). Each line is checked against the estate as "
        "the earlier lines left it and reported `added`, `changed` (with the fields), "
        "`unchanged` or `rejected` (with the reason); a bad line does not stop the others. "
        "With `dry_run=true` nothing is written. Otherwise the accepted lines are written in "
        "one transaction, each audited as `access_point.import`."
    ),
    tags=TAGS,
    request={"type": "string", "minLength": 1, "description": "CSV text (UTF-8), header first"},
    request_content_type="text/csv",
    query=[
        Param(
            "dry_run",
            {"type": "string", "enum": ["true", "false", "1", "0"]},
            description="report what would happen, change nothing",
        )
    ],
    responses={
        200: IMPORT_REPORT,
        409: "The estate changed during the import.",
        413: Response(schemas.PROBLEM, "The body is over the limit.", "application/problem+json"),
        415: "Neither `text/csv` nor `multipart/form-data`.",
        422: "The file as a whole is unusable (no header, bad header, too many lines).",
    },
)
async def import_points(request: web.Request) -> web.Response:
    dry_run = flag_param(request, "dry_run")
    text = decode(await _csv_bytes(request))
    report = await management(request).import_csv(actor(request), text, dry_run=dry_run)
    return web.json_response(report.to_json())


async def _csv_bytes(request: web.Request) -> bytes:
    raw = await request.read()  # read (and size-limited) by the body middleware already
    if request.content_type == "multipart/form-data":
        return _form_file(request.headers.get("Content-Type", ""), raw)
    if request.content_type in ("text/csv", "text/plain", "application/csv"):
        return raw
    raise UnsupportedMediaTypeError("Send text/csv, or multipart/form-data with part 'file'.")


def _form_file(content_type: str, raw: bytes) -> bytes:
    """The part named ``file`` of a multipart form already in memory."""
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode()
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + raw)
    if message.is_multipart():
        for part in message.iter_parts():
            if part.get_param("name", header="content-disposition") == "file":
                payload = part.get_payload(decode=True)
                if isinstance(payload, bytes):
                    return payload
    raise InvalidFieldError("file", "expected the CSV file in part 'file'")


@routes.post("/admin/api/v1/partners/{partner}/sync")
@scoped(Action.ESTATE_MANAGE, ORGANISATION_ONLY)
@doc(
    "Sync our access points with a partner's device list",
    description=(
        "Reads the partner's devices (`list_devices`) and reports, against our access points "
        "of that partner: `added` (devices no access point holds), `changed` (kind changed, or "
        "back after being gone), `gone` (no longer listed), `unchanged`. `apply: false` is a "
        "preview. `apply: true` creates the added ones as `<partner>-<device id>` in "
        "`building_id` under the vendor's name, takes the changes (our names are kept) and "
        "marks gone ones (`gone_at`); nothing is deleted, rights and audit history stay. "
        "Each change is audited (`access_point.sync_add|sync_change|sync_gone`, then "
        "`partner.sync`)."
    ),
    tags=TAGS,
    request=SYNC_REQUEST,
    responses={
        200: SYNC_REPORT,
        404: "No such partner.",
        409: "The estate changed during the sync.",
        422: INVALID,
        502: "The partner gave no usable answer.",
        503: Response(
            schemas.PROBLEM,
            "The partner's circuit is open, its bulkhead full, or this node has no gateway.",
            "application/problem+json",
            headers={"Retry-After": "seconds to wait"},
        ),
        504: "The partner did not answer in time.",
    },
)
async def sync_partner(request: web.Request) -> web.Response:
    data = await body(request)
    if not isinstance(data, dict):
        raise InvalidFieldError("body", "expected a JSON object")
    unknown = set(data) - {"apply", "building_id"}
    if unknown:
        raise InvalidFieldError(sorted(unknown)[0], "unknown field")
    apply = data.get("apply")
    if not isinstance(apply, bool):
        raise InvalidFieldError("apply", "expected true or false")
    building_id = data.get("building_id")
    if building_id is not None and not isinstance(building_id, str):
        raise InvalidFieldError("building_id", "expected a building id")
    report = await management(request).sync_partner(
        actor(request), request.match_info["partner"], apply=apply, building_id=building_id
    )
    return web.json_response(report)
