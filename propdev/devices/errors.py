"""Errors of partner device events."""

from __future__ import annotations


class DeviceEventError(Exception):
    """Base class of device event errors."""


class InvalidEventError(DeviceEventError, ValueError):
    """Raised when a partner event is malformed; ``reason`` is a short machine-readable code."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


class IngestUnavailableError(DeviceEventError):
    """Raised when a device actor did not take its events in time; the partner should retry."""
