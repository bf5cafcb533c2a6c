"""Errors of the access rules: credentials, schedules, guest passes, vehicles."""

from __future__ import annotations


class AccessError(Exception):
    """Base class of access-logic errors."""


class InvalidFieldError(AccessError, ValueError):
    """Raised when a field of a request is missing or invalid; names the field."""

    def __init__(self, field: str, detail: str) -> None:
        super().__init__(f"{field}: {detail}")
        self.field = field
        self.detail = detail


class InvalidScheduleError(InvalidFieldError):
    """Raised when a right's schedule cannot be parsed or makes no sense."""


class InvalidPlateError(InvalidFieldError):
    """Raised when a licence plate is not in a format we can recognise."""


class NotEntitledError(AccessError, PermissionError):
    """Raised when a resident asks for a credential to access points they may not open."""

    def __init__(self, access_point_ids: list[str]) -> None:
        super().__init__(f"no right to {', '.join(access_point_ids)}")
        self.access_point_ids = access_point_ids


class PassNotFoundError(AccessError, LookupError):
    """Raised when a guest pass does not exist or belongs to someone else."""


class VehicleNotFoundError(AccessError, LookupError):
    """Raised when a vehicle does not exist or belongs to someone else."""


class PlateTakenError(AccessError):
    """Raised when a plate is already registered by another resident."""


class TooManyPassesError(AccessError):
    """Raised when a resident already holds the maximum number of active guest passes."""


class TooManyVehiclesError(AccessError):
    """Raised when a resident already registered the maximum number of vehicles."""
