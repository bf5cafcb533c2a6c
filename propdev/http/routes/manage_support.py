"""What the management routes share: the services' key, the audit actor, the body.

``propdev.management``'s errors become problems in the problems middleware
(``propdev.http.problems``): an invalid field 422 (``field`` names it), an unknown object 404, a
conflict 409; a partner that cannot be read 502/503/504.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from propdev.http import schemas
from propdev.http.body import json_body
from propdev.http.errors import BadRequestError
from propdev.http.keys import MANAGEMENT
from propdev.http.middlewares import principal
from propdev.http.scope import scope_of
from propdev.management import Management, operator

TAGS = ["management"]


def management(request: web.Request) -> Management:
    return request.app[MANAGEMENT]


def actor(request: web.Request) -> str:
    """The audit actor of the calling operator."""
    return operator(principal(request).sub)


async def body(request: web.Request) -> Any:
    """The JSON body (400 when it is not JSON)."""
    return await json_body(request)


async def listed(
    request: web.Request, find: Callable[..., Awaitable[object]], *filters: str
) -> web.Response:
    """200 with what ``find`` answers, given the query parameters named ``filters`` (None when
    absent) as keyword arguments, and the caller's ``sites`` (None: organisation-wide)."""
    given = {name: request.query.get(name) for name in filters}
    return web.json_response(await find(sites=scope_of(request).site_ids, **given))


async def created(
    request: web.Request, create: Callable[[str, Any], Awaitable[object]]
) -> web.Response:
    """201 with what ``create(actor, body)`` made."""
    return web.json_response(await create(actor(request), await body(request)), status=201)


async def updated(
    request: web.Request, update: Callable[[str, str, Any], Awaitable[object]]
) -> web.Response:
    """200 with what ``update(actor, id, body)`` answers for the ``{id}`` of the path."""
    changed = await update(actor(request), request.match_info["id"], await body(request))
    return web.json_response(changed)


async def deleted(
    request: web.Request, delete: Callable[[str, str], Awaitable[None]]
) -> web.Response:
    """204 once ``delete(actor, id)`` deleted the ``{id}`` of the path."""
    await delete(actor(request), request.match_info["id"])
    return web.Response(status=204)


def flag_param(request: web.Request, name: str, default: bool = False) -> bool:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    if raw.lower() in ("true", "1", "yes"):
        return True
    if raw.lower() in ("false", "0", "no"):
        return False
    raise BadRequestError(f"Query parameter {name!r} must be true or false.")


# -- schemas shared by the management routes --------------------------------------------------

ID: schemas.JSONSchema = {
    "type": "string",
    "pattern": "^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$",
    "description": "1 to 64 letters, digits, `.`, `_`, `:` or `-`",
}


def text(max_length: int) -> schemas.JSONSchema:
    """What ``management.fields.text`` takes: at most ``max_length`` characters, not only
    white space, no control characters (U+0000-U+001F, U+007F)."""
    return {
        "type": "string",
        "minLength": 1,
        "maxLength": max_length,
        "pattern": r"^[^\x00-\x1f\x7f]*[^\x00-\x1f\x7f\s][^\x00-\x1f\x7f]*$",
    }


NAME = text(200)
NULLABLE_NUMBER: schemas.JSONSchema = {"type": ["number", "null"]}
INVALID = "A field is invalid (`field` names it)."
CONFLICT = "It contradicts what exists (`field` names the field when one is to blame)."


__all__ = (
    "actor",
    "body",
    "created",
    "deleted",
    "flag_param",
    "listed",
    "management",
    "updated",
)
