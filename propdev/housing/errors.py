"""Errors of the utilities gateway. Upstream failures reuse the partner errors
(``PartnerTimeoutError``, ``PartnerUnavailableError``, ``CircuitOpenError``, ...), so the same
telemetry and the same HTTP mapping apply."""

from __future__ import annotations

from typing import Any


class UtilitiesError(Exception):
    """Base class of utilities gateway errors."""


class NoAccountError(UtilitiesError):
    """Raised when the resident has no utilities account (apartment) linked."""


class InvalidReadingError(UtilitiesError):
    """Raised when a meter reading fails validation; ``field`` names the bad field.

    ``reason`` is a machine-readable code (``below_last_reading``, ``out_of_range``, ...);
    ``extra`` carries details for the answer (e.g. ``last_value``).
    """

    def __init__(self, field: str, reason: str, detail: str, **extra: Any) -> None:
        super().__init__(f"{field}: {detail}")
        self.field = field
        self.reason = reason
        self.detail = detail
        self.extra = extra
