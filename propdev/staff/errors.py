"""Errors of staff scope and lifecycle. They know nothing of HTTP: ``propdev.http.problems``
answers each (out of scope 404, not permitted 403, invalid field 400, conflict 409)."""

from __future__ import annotations


class StaffError(Exception):
    """Base class of staff errors."""


class NotPermittedError(StaffError, PermissionError):
    """Raised when the caller's roles do not allow the action (whatever it names)."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class OutOfScopeError(StaffError, LookupError):
    """Raised when the resource is not in the caller's scope (answered as if it did not
    exist); ``kind`` and ``ident`` name what was asked for."""

    def __init__(self, kind: str, ident: str) -> None:
        super().__init__(f"no {kind} {ident!r}")
        self.kind = kind
        self.ident = ident


class InvalidStaffFieldError(StaffError, ValueError):
    """Raised when a field of a staff request is missing or invalid; names the field."""

    def __init__(self, field: str, detail: str) -> None:
        super().__init__(f"{field}: {detail}")
        self.field = field
        self.detail = detail


class StaffConflictError(StaffError):
    """Raised when a change contradicts what exists (a username taken, the last
    organisation-wide administrator disabled or narrowed)."""

    def __init__(self, detail: str, field: str | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.field = field
