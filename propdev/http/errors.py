"""HTTP-facing errors: each knows its status; one middleware renders them as problem+json."""

from __future__ import annotations

from typing import Any

PROBLEM_BASE = "https://propdev.example/problems/"


class ProblemError(Exception):
    """Raised by handlers to answer with an RFC 9457 problem document."""

    status = 500
    kind = "internal"
    title = "Internal error"

    def __init__(
        self,
        detail: str = "",
        *,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        self.headers = headers or {}
        self.extra = extra or {}

    def body(self) -> dict[str, Any]:
        return {
            "type": PROBLEM_BASE + self.kind,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
            **self.extra,
        }


class BadRequestError(ProblemError):
    """Raised when the request is malformed."""

    status, kind, title = 400, "bad-request", "Bad request"


class UnauthorizedError(ProblemError):
    """Raised when no valid access token was presented."""

    status, kind, title = 401, "unauthorized", "Unauthorized"


class ForbiddenError(ProblemError):
    """Raised when the caller is known but may not do this."""

    status, kind, title = 403, "forbidden", "Forbidden"


class NotFoundError(ProblemError):
    """Raised when the resource does not exist (or is not the caller's to see)."""

    status, kind, title = 404, "not-found", "Not found"


class TooManyRequestsError(ProblemError):
    """Raised when the caller exceeded its rate limit."""

    status, kind, title = 429, "rate-limited", "Too many requests"


class ServiceUnavailableError(ProblemError):
    """Raised when a dependency is down; the client may retry later."""

    status, kind, title = 503, "unavailable", "Service unavailable"


class StoreDownError(ServiceUnavailableError):
    """Raised (by the problems middleware, from the store's error) when the database cannot be
    reached: the client may retry after ``Retry-After``."""

    status, kind, title = 503, "store-unavailable", "Service unavailable"
