"""Errors of the management services, in the estate's terms: a field that is invalid, an object
that does not exist, a change that contradicts what exists, a partner this node cannot reach.

They know nothing of HTTP: ``propdev.http.problems`` answers each with its problem."""

from __future__ import annotations


class ManagementError(Exception):
    """Base class of management errors."""


class InvalidFieldError(ManagementError, ValueError):
    """Raised when a field of a request is missing or invalid; names the field."""

    def __init__(self, field: str, detail: str) -> None:
        super().__init__(f"{field}: {detail}")
        self.field = field
        self.detail = detail


class UnknownObjectError(ManagementError, LookupError):
    """Raised when the site, building, apartment, access point or resident does not exist."""

    def __init__(self, kind: str, object_id: str) -> None:
        super().__init__(f"no {kind} {object_id!r}")
        self.kind = kind
        self.object_id = object_id


class ConflictError(ManagementError):
    """Raised when a change contradicts what exists (an id or a device taken, still in use)."""

    def __init__(self, detail: str, field: str | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.field = field


class NoGatewayError(ManagementError):
    """Raised when this node has no gateway to a registered partner (its adapter is unknown)."""


class NotOwnerError(ManagementError, PermissionError):
    """Raised when a resident who does not own their apartment (a member, or someone without
    one) invites or removes household members."""


class PartnerRequestError(InvalidFieldError):
    """Raised when a partner request is refused as bad input (400): an unknown adapter, a base
    URL that is not HTTPS, a CSR for another name or with a weak key; names the field."""
