"""Problems of the access routes (guest passes, vehicles); their bodies are read by ``body``."""

from __future__ import annotations

from propdev.access import InvalidFieldError
from propdev.http.errors import ProblemError


class UnprocessableError(ProblemError):
    """Raised when a body is JSON but a field is invalid; ``field`` names it."""

    status, kind, title = 422, "invalid-field", "Invalid field"


class ConflictError(ProblemError):
    """Raised when the request contradicts what exists (a plate taken, a limit reached)."""

    status, kind, title = 409, "conflict", "Conflict"


def invalid(exc: InvalidFieldError) -> UnprocessableError:
    return UnprocessableError(f"{exc.field}: {exc.detail}", extra={"field": exc.field})
