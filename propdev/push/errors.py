"""Errors of push to phones."""

from __future__ import annotations


class PushError(Exception):
    """Base class of push errors."""


class InvalidPushTokenError(PushError, ValueError):
    """Raised when a push-token registration has the wrong shape; ``field`` names the part."""

    def __init__(self, field: str, detail: str) -> None:
        super().__init__(f"{field}: {detail}")
        self.field = field
        self.detail = detail


class PushTokenNotFoundError(PushError, LookupError):
    """Raised when a push token does not exist or is another account's."""


class PushConfigError(PushError, ValueError):
    """Raised when a provider's credentials (a key file, a service account) are unusable."""


class PushUnavailableError(PushError, ConnectionError):
    """Raised (and counted by the provider's breaker) when a provider failed transiently."""


__all__ = (
    "InvalidPushTokenError",
    "PushConfigError",
    "PushError",
    "PushTokenNotFoundError",
    "PushUnavailableError",
)
