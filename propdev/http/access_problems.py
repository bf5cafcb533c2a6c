"""Problems of the access routes (guest passes, vehicles); their bodies are read by ``body``."""

from __future__ import annotations

from typing import Protocol

from propdev.http.errors import ProblemError


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
