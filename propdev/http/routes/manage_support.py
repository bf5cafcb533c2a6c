"""What the management routes share: the services (``management``), the audit actor, and
``managed``, which turns ``propdev.management`` errors into problems: an invalid field 422
(``field`` names it), an unknown object 404, a conflict 409; a partner that cannot be read
502/503/504.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from propdev.http import schemas
from propdev.http.access_problems import ConflictError, UnprocessableError
from propdev.http.body import json_body
from propdev.http.errors import (
    BadRequestError,
    NotFoundError,
    ProblemError,
    ServiceUnavailableError,
)
from propdev.http.keys import MANAGEMENT
from propdev.http.middlewares import principal
from propdev.management import (
    ConflictError as ManagementConflictError,
)
from propdev.management import (
    InvalidFieldError,
    Management,
    NoGatewayError,
    UnknownObjectError,
    operator,
)
from propdev.partners import (
    BulkheadFullError,
    CircuitOpenError,
    PartnerError,
    PartnerTimeoutError,
)

TAGS = ["management"]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class BadGatewayError(ProblemError):
    """Raised when a partner's API gave no usable answer."""

    status, kind, title = 502, "partner-unavailable", "Bad gateway"


class GatewayTimeoutError(ProblemError):
    """Raised when a partner's API did not answer in time."""

    status, kind, title = 504, "partner-timeout", "Gateway timeout"


def managed(handler: Handler) -> Handler:
    """Turn management and partner errors into problems."""

    @functools.wraps(handler)
    async def wrapped(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except InvalidFieldError as exc:
            raise UnprocessableError(
                f"{exc.field}: {exc.detail}", extra={"field": exc.field}
            ) from None
        except UnknownObjectError as exc:
            raise NotFoundError(f"No {exc.kind} {exc.object_id!r}.") from None
        except ManagementConflictError as exc:
            extra = {"field": exc.field} if exc.field else {}
            raise ConflictError(exc.detail, extra=extra) from None
        except NoGatewayError as exc:
            raise ServiceUnavailableError(str(exc), headers={"Retry-After": "5"}) from None
        except (CircuitOpenError, BulkheadFullError) as exc:
            raise ServiceUnavailableError(
                f"The partner is not called now: {exc}", headers={"Retry-After": "5"}
            ) from None
        except PartnerTimeoutError:
            raise GatewayTimeoutError("The partner did not answer in time.") from None
        except PartnerError as exc:
            raise BadGatewayError(f"The partner gave no usable answer: {exc}") from None

    return wrapped


def management(request: web.Request) -> Management:
    return request.app[MANAGEMENT]


def actor(request: web.Request) -> str:
    """The audit actor of the calling operator."""
    return operator(principal(request).sub)


async def body(request: web.Request) -> Any:
    """The JSON body (400 when it is not JSON)."""
    return await json_body(request)


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
NAME: schemas.JSONSchema = {"type": "string", "minLength": 1, "maxLength": 200}
NULLABLE_NUMBER: schemas.JSONSchema = {"type": ["number", "null"]}
INVALID = "A field is invalid (`field` names it)."
CONFLICT = "It contradicts what exists (`field` names the field when one is to blame)."


__all__ = (
    "BadGatewayError",
    "GatewayTimeoutError",
    "actor",
    "body",
    "flag_param",
    "managed",
    "management",
)
