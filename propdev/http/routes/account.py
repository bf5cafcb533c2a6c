"""Account self-service: ``/api/v1/me/password``, ``/api/v1/me/sessions``,
``/api/v1/password-reset`` and ``/api/v1/activation``.

The work is ``propdev.accounts``'; its errors become problems through ``propdev.http.problems``
(400 invalid or weak fields and wrong codes, 403 a wrong current password, 404 a session not
the caller's, 429 + ``Retry-After`` while throttled).
"""

from __future__ import annotations

from aiohttp import web

from propdev.accounts import PASSWORD_MIN_LENGTH
from propdev.http import schemas
from propdev.http.body import json_body
from propdev.http.keys import ACCOUNTS
from propdev.http.middlewares import principal
from propdev.http.openapi import Response, doc
from propdev.http.permissions import Permission, requires

routes = web.RouteTableDef()
TAGS = ["account"]

_PASSWORD_RULES = (
    f"At least {PASSWORD_MIN_LENGTH} characters (any, spaces and Unicode included; at most "
    "256), not a commonly used password (a list of passwords known from breaches ships with "
    "the node), not the username (NIST SP 800-63B). Refused with 400, `field` naming it."
)
NEW_PASSWORD = {"type": "string", "minLength": PASSWORD_MIN_LENGTH, "description": _PASSWORD_RULES}
USERNAME = {"type": "string", "minLength": 1, "maxLength": 128}

PASSWORD_CHANGE = schemas.named(
    "PasswordChange",
    schemas.object_of(
        {"current_password": schemas.STRING, "new_password": NEW_PASSWORD},
        required=["current_password", "new_password"],
        additional=False,
    ),
)
SESSION = schemas.named(
    "Session",
    schemas.object_of(
        {
            "id": {"type": "string", "description": "the `sid` of the session's access tokens"},
            "client_id": schemas.STRING,
            "created_at": {"type": "number", "description": "sign-in (epoch seconds)"},
            "last_used_at": {
                "type": "number",
                "description": "the last sign-in or token refresh (epoch seconds)",
            },
            "current": {"type": "boolean", "description": "the session of the calling token"},
        },
        required=["id", "client_id", "created_at", "last_used_at", "current"],
        description="One sign-in and its refresh-token rotations (a refresh-token family).",
    ),
)
RESET_REQUEST = schemas.named(
    "PasswordResetRequest",
    schemas.object_of({"username": USERNAME}, required=["username"], additional=False),
)
RESET_CONFIRM = schemas.named(
    "PasswordResetConfirm",
    schemas.object_of(
        {
            "username": USERNAME,
            "code": {"type": "string", "description": "the code sent, 8 digits"},
            "new_password": NEW_PASSWORD,
        },
        required=["username", "code", "new_password"],
        additional=False,
    ),
)
ACTIVATION = schemas.named(
    "Activation",
    schemas.object_of(
        {
            "username": USERNAME,
            "activation_code": {
                "type": "string",
                "description": "from the invitation, `xxxx-xxxx-xxxx`",
            },
            "password": NEW_PASSWORD,
        },
        required=["username", "activation_code", "password"],
        additional=False,
    ),
)
ACTIVATED = schemas.named(
    "Activated",
    schemas.object_of(
        {
            "totp_uri": {
                "type": "string",
                "description": "a staff account's new TOTP seed (`otpauth://totp/...`), shown "
                "once: the first login with a code of it completes the enrolment",
            }
        },
        description="Empty for a resident; `totp_uri` for staff.",
        additional=False,
    ),
)
_THROTTLED = Response(
    schemas.PROBLEM,
    "Too many attempts: retry after `Retry-After` seconds.",
    "application/problem+json",
    headers={"Retry-After": "Seconds to wait."},
)
_INVALID = "A field is missing, unknown or not a string, or the new password is too weak."


@routes.post("/api/v1/me/password")
@requires(Permission.AUTHENTICATED)
@doc(
    "Change my password",
    description=(
        "Checks `current_password` (wrong ones count as failed sign-ins of the account) and "
        "sets `new_password`. Every other session of the account is signed out: its refresh "
        "token answers `invalid_grant` and its access tokens are refused (401) at once, on "
        "every node. The calling session stays. Audited as `account.password_change`; a "
        "wrong current password (403) or a throttled attempt (429) too, `denied`."
    ),
    tags=TAGS,
    request=PASSWORD_CHANGE,
    responses={
        204: None,
        400: _INVALID,
        403: "The current password is wrong; nothing changed.",
        404: "The caller has no local account (or can no longer sign in).",
        429: _THROTTLED,
    },
)
async def change_password(request: web.Request) -> web.Response:
    caller = principal(request)
    sid = caller.claims.get("sid")
    await request.app[ACCOUNTS].change_password(
        caller.sub,
        sid if isinstance(sid, str) else None,
        await json_body(request),
        remote=request.remote,
    )
    return web.Response(status=204)


@routes.get("/api/v1/me/sessions")
@requires(Permission.AUTHENTICATED)
@doc(
    "My sessions",
    description=(
        "One per sign-in still able to refresh (a refresh-token family), the most recently "
        "used first; `current` marks the calling token's."
    ),
    tags=TAGS,
    responses={200: schemas.array_of(SESSION)},
)
async def list_sessions(request: web.Request) -> web.Response:
    caller = principal(request)
    sid = caller.claims.get("sid")
    found = await request.app[ACCOUNTS].sessions(caller.sub)
    return web.json_response([s.to_json(sid if isinstance(sid, str) else None) for s in found])


@routes.delete("/api/v1/me/sessions/{id}")
@requires(Permission.AUTHENTICATED)
@doc(
    "Sign a session out",
    description=(
        "Its refresh token answers `invalid_grant` and its access tokens are refused (401), "
        "on every node. Ending a session of the caller's that had ended already answers 204 "
        "too. Audited as `account.session_revoke`."
    ),
    tags=TAGS,
    responses={204: None, 404: "No such session of the caller's."},
)
async def end_session(request: web.Request) -> web.Response:
    await request.app[ACCOUNTS].end_session(principal(request).sub, request.match_info["id"])
    return web.Response(status=204)


@routes.post("/api/v1/password-reset")
@requires(Permission.PUBLIC)
@doc(
    "Ask for a password-reset code",
    description=(
        "Always 202, whatever the username, and as fast: when it names a resident's account, "
        "a one-time code (8 digits) is sent to them by the node's notifier (the development "
        "default appends it to `outbox.jsonl` in the data dir). A new code replaces the last; "
        "at most 3 codes per account per 15 minutes are sent. Requests per client address "
        "are limited (429)."
    ),
    tags=TAGS,
    request=RESET_REQUEST,
    responses={202: None, 400: _INVALID, 429: _THROTTLED},
)
async def request_reset(request: web.Request) -> web.Response:
    await request.app[ACCOUNTS].request_reset(await json_body(request), remote=request.remote)
    return web.Response(status=202)


@routes.post("/api/v1/password-reset/confirm")
@requires(Permission.PUBLIC)
@doc(
    "Set a new password with a reset code",
    description=(
        "The code works once, until it expires (`PROPDEV_RESET_CODE_TTL`, 15 minutes by "
        "default), and dies after 5 wrong guesses; wrong codes count as failed sign-ins of "
        "the account. Every session of the account is signed out (refresh tokens and access "
        "tokens, on every node). Audited as `account.password_reset`; a refused code too "
        "(`denied`)."
    ),
    tags=TAGS,
    request=RESET_CONFIRM,
    responses={
        204: None,
        400: (
            "A field is invalid, the new password is too weak, or the code is wrong, used or "
            "expired (`invalid-code`, the same whichever)."
        ),
        429: _THROTTLED,
    },
)
async def confirm_reset(request: web.Request) -> web.Response:
    await request.app[ACCOUNTS].confirm_reset(await json_body(request), remote=request.remote)
    return web.Response(status=204)


@routes.post("/api/v1/activation")
@requires(Permission.PUBLIC)
@doc(
    "Activate an invited account",
    description=(
        "Sets the account's password with the `activation_code` of its invitation "
        "(`POST /admin/api/v1/residents`, or a staff account's from "
        "`POST /admin/api/v1/operators`). The code works once, until it expires "
        "(`PROPDEV_ACTIVATION_CODE_TTL`, 7 days by default), and dies after 5 wrong guesses. "
        "Sessions signed in with the temporary password are signed out. Audited as "
        "`account.activate` (a refused code too, `denied`). A resident's answer is `{}`; "
        "a staff account's is its new TOTP seed, "
        '`{"totp_uri": "otpauth://..."}`: a second factor is mandatory for staff, '
        "and the first login with a code of it completes the enrolment."
    ),
    tags=TAGS,
    request=ACTIVATION,
    responses={
        200: ACTIVATED,
        400: (
            "A field is invalid, the password is too weak, or the code is wrong, used or "
            "expired (`invalid-code`, the same whichever)."
        ),
        429: _THROTTLED,
    },
)
async def activate(request: web.Request) -> web.Response:
    answer = await request.app[ACCOUNTS].activate(await json_body(request), remote=request.remote)
    return web.json_response(answer)
