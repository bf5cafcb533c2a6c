"""Problems of the access routes (guest passes, vehicles) and reading their JSON bodies."""

from __future__ import annotations

import json
from typing import Any, Protocol

from aiohttp import web

from propdev.http.errors import BadRequestError, ProblemError


class UnprocessableError(ProblemError):
    """Raised when a body is JSON but a field is invalid; ``field`` names it."""

    status, kind, title = 422, "invalid-field", "Invalid field"


class ConflictError(ProblemError):
    """Raised when the request contradicts what exists (a plate taken, a limit reached)."""

    status, kind, title = 409, "conflict", "Conflict"


class InvalidField(Protocol):
    """A domain error naming an invalid field (``access``'s and ``management``'s)."""

    @property
    def field(self) -> str: ...

    @property
    def detail(self) -> str: ...


def invalid(exc: InvalidField) -> UnprocessableError:
    return UnprocessableError(f"{exc.field}: {exc.detail}", extra={"field": exc.field})


async def json_body(request: web.Request) -> Any:
    """The request's JSON body, or a 400 problem saying it is not JSON."""
    raw = await request.read()
    if not raw:
        raise BadRequestError("A JSON body is required.")
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise BadRequestError("The body is not valid JSON.") from None
