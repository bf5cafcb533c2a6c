"""``/api/v1/me/push-tokens``: the devices a resident's pushes go to (FCM, APNs, Web Push);
``/admin/api/v1/me/push-tokens`` and ``/admin/api/v1/me/push-preferences``: a staff member's,
and whether devices going offline (at the sites of their scope) are pushed to them."""

from __future__ import annotations

import structlog
from aiohttp import web

from propdev.http import schemas
from propdev.http.body import json_body
from propdev.http.errors import BadRequestError, NotFoundError
from propdev.http.keys import PUSH_PREFERENCES, PUSH_TOKENS
from propdev.http.middlewares import principal
from propdev.http.openapi import Response, doc
from propdev.http.permissions import Permission, requires
from propdev.http.scope import LISTED, OWN, scoped
from propdev.push import InvalidPushTokenError, PushTokenNotFoundError
from propdev.staff import Action

log = structlog.get_logger()
routes = web.RouteTableDef()

B64URL = {"type": "string", "pattern": "^[A-Za-z0-9_-]+={0,2}$"}

PUSH_TOKEN_REQUEST = schemas.named(
    "PushTokenRequest",
    schemas.object_of(
        {
            "platform": {"type": "string", "enum": ["fcm", "apns", "webpush"]},
            "token": {
                "type": "string",
                "description": (
                    "fcm: the FCM registration token (32 to 1024 of `A-Z a-z 0-9 _ : -`); "
                    "apns: the device token, 64 hexadecimal digits. Not for webpush."
                ),
            },
            "subscription": schemas.object_of(
                {
                    "endpoint": {"type": "string", "description": "An https URL."},
                    "keys": schemas.object_of(
                        {
                            "p256dh": {
                                **B64URL,
                                "description": "base64url of the 65-byte P-256 public key",
                            },
                            "auth": {**B64URL, "description": "base64url of 16 bytes"},
                        },
                        required=["p256dh", "auth"],
                    ),
                },
                required=["endpoint", "keys"],
                description="webpush only: the browser's `PushSubscription` as JSON.",
            ),
            "locale": {
                "type": "string",
                "enum": ["ru", "en"],
                "description": "The account's language for push texts (default `ru`).",
            },
        },
        required=["platform"],
        additional=False,
    ),
)

PUSH_TOKEN = schemas.named(
    "PushToken",
    schemas.object_of(
        {
            "id": schemas.STRING,
            "platform": {"type": "string", "enum": ["fcm", "apns", "webpush"]},
            "hint": {
                "type": "string",
                "description": "The token's last 6 characters, or the endpoint's host.",
            },
            "created_at": schemas.NUMBER,
        },
        required=["id", "platform", "hint", "created_at"],
    ),
)


@routes.post("/api/v1/me/push-tokens")
@requires(Permission.RESIDENT)
@doc(
    "Register a device for pushes",
    description=(
        "`access.automatic` (a plate opened the barrier), `pass.used` (a guest pass opened a "
        "door) and `access.failed` (an open failed while the app was closed) are pushed to "
        "every registered device of the resident when no app socket is live. The same device "
        "again keeps its id. It is forgotten on logout (the login it was registered with), "
        "on move-out, on erasure, and when the provider reports it gone. `locale` sets the "
        "language of the account's push texts."
    ),
    tags=["push"],
    request=PUSH_TOKEN_REQUEST,
    responses={
        201: Response(schemas.object_of({"id": schemas.STRING}, required=["id"]), "Registered."),
        400: "Not a token of that platform (`field` names the part); nothing stored.",
    },
)
async def register_push_token(request: web.Request) -> web.Response:
    return await _register(request)


async def _register(request: web.Request) -> web.Response:
    caller = principal(request)
    body = await json_body(request)
    sid = caller.claims.get("sid")
    try:
        token = await request.app[PUSH_TOKENS].register(
            caller.sub, body, sid=sid if isinstance(sid, str) else None
        )
    except InvalidPushTokenError as exc:
        raise BadRequestError(f"{exc.field}: {exc.detail}", extra={"field": exc.field}) from None
    log.info("push_token_registered", token_id=token.id, platform=token.platform, owner=caller.sub)
    return web.json_response({"id": token.id}, status=201)


@routes.get("/api/v1/me/push-tokens")
@requires(Permission.RESIDENT)
@doc(
    "My devices registered for pushes (never the tokens themselves)",
    tags=["push"],
    responses={200: schemas.array_of(PUSH_TOKEN)},
)
async def list_push_tokens(request: web.Request) -> web.Response:
    return await _list(request)


async def _list(request: web.Request) -> web.Response:
    found = await request.app[PUSH_TOKENS].of(principal(request).sub)
    return web.json_response([t.to_json() for t in found])


@routes.delete("/api/v1/me/push-tokens/{id}")
@requires(Permission.RESIDENT)
@doc(
    "Forget a device",
    description="Its pending pushes are not sent.",
    tags=["push"],
    responses={204: None, 404: "No such device of the caller."},
)
async def remove_push_token(request: web.Request) -> web.Response:
    return await _remove(request)


async def _remove(request: web.Request) -> web.Response:
    caller = principal(request)
    token_id = request.match_info["id"]
    try:
        await request.app[PUSH_TOKENS].remove(caller.sub, token_id)
    except PushTokenNotFoundError:
        raise NotFoundError("No such push token.") from None
    log.info("push_token_removed", token_id=token_id, owner=caller.sub)
    return web.Response(status=204)


# -- staff -------------------------------------------------------------------------------------

PUSH_PREFERENCES_BODY = schemas.named(
    "PushPreferences",
    schemas.object_of(
        {
            "device_offline": {
                "type": "boolean",
                "description": (
                    "Push `device.offline` when a vendor reports a device of one of your sites "
                    "offline (every site, for organisation-wide staff). Default false."
                ),
            },
        },
        required=["device_offline"],
        additional=False,
    ),
)


@routes.post("/admin/api/v1/me/push-tokens")
@scoped(Action.SELF, LISTED)
@doc(
    "Register a staff member's device for pushes",
    description=(
        "The body is the residents' (`POST /api/v1/me/push-tokens`). What is pushed to it: "
        "`device.offline`, once opted in (`PUT /admin/api/v1/me/push-preferences`), for the "
        "devices of the sites in the caller's scope. Forgotten on logout (the login it was "
        "registered with) and when the provider reports it gone; a disabled account gets "
        "nothing."
    ),
    tags=["push"],
    request=PUSH_TOKEN_REQUEST,
    responses={
        201: Response(schemas.object_of({"id": schemas.STRING}, required=["id"]), "Registered."),
        400: "Not a token of that platform (`field` names the part); nothing stored.",
    },
)
async def register_staff_push_token(request: web.Request) -> web.Response:
    return await _register(request)


@routes.get("/admin/api/v1/me/push-tokens")
@scoped(Action.SELF, LISTED)
@doc(
    "The calling staff member's devices registered for pushes (never the tokens themselves)",
    tags=["push"],
    responses={200: schemas.array_of(PUSH_TOKEN)},
)
async def list_staff_push_tokens(request: web.Request) -> web.Response:
    return await _list(request)


@routes.delete("/admin/api/v1/me/push-tokens/{id}")
@scoped(Action.SELF, OWN)
@doc(
    "Forget one of the calling staff member's devices",
    description="Its pending pushes are not sent.",
    tags=["push"],
    responses={204: None, 404: "No such device of the caller."},
)
async def remove_staff_push_token(request: web.Request) -> web.Response:
    return await _remove(request)


@routes.get("/admin/api/v1/me/push-preferences")
@scoped(Action.SELF, LISTED)
@doc(
    "What is pushed to the calling staff member's devices",
    tags=["push"],
    responses={200: PUSH_PREFERENCES_BODY},
)
async def staff_push_preferences(request: web.Request) -> web.Response:
    return web.json_response(await request.app[PUSH_PREFERENCES].of(principal(request).sub))


@routes.put("/admin/api/v1/me/push-preferences")
@scoped(Action.SELF, LISTED)
@doc(
    "Opt in to (or out of) device-offline pushes",
    description=(
        "With `device_offline` true, a vendor's `device_offline` report of a device at one of "
        "the caller's sites (any site, organisation-wide) is pushed to every device the "
        "caller registered (`/admin/api/v1/me/push-tokens`), in the account's language, "
        "written in the report's transaction; a report of a device already offline, or "
        "older than its last report, is not. Not audited (as the push-token locale is not): a "
        "preference of one's own account."
    ),
    tags=["push"],
    request=PUSH_PREFERENCES_BODY,
    responses={
        200: Response(PUSH_PREFERENCES_BODY, "The preferences now."),
        400: 'Not `{"device_offline": true|false}` (`field` names the part); nothing stored.',
    },
)
async def set_staff_push_preferences(request: web.Request) -> web.Response:
    caller = principal(request)
    body = await json_body(request)
    if not isinstance(body, dict):
        raise BadRequestError("body: expected a JSON object", extra={"field": "body"})
    extra = sorted(set(body) - {"device_offline"})
    if extra:
        raise BadRequestError(f"{extra[0]}: unknown field", extra={"field": extra[0]})
    wanted = body.get("device_offline")
    if not isinstance(wanted, bool):
        raise BadRequestError(
            "device_offline: expected true or false", extra={"field": "device_offline"}
        )
    chosen = await request.app[PUSH_PREFERENCES].set(caller.sub, device_offline=wanted)
    log.info("push_preferences_set", owner=caller.sub, device_offline=wanted)
    return web.json_response(chosen)
