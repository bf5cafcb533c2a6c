"""Errors of the security layer."""

from __future__ import annotations


class SecurityError(Exception):
    """Base class of security errors."""


class InvalidTokenError(SecurityError, ValueError):
    """Raised when an access token fails verification; ``reason`` says why, in a few words."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class KeyStoreError(SecurityError, OSError):
    """Raised when the signing keys cannot be read or created."""


class LoginFailedError(SecurityError):
    """Raised when a username, password or one-time code is wrong; its message never says
    which. ``reason`` does, for the audit only (``unknown_user``, ``bad_password``,
    ``bad_otp``, ``disabled``; docs/audit.md), and ``user_id`` names the account the
    username matched, if any: neither is ever shown to the client."""

    def __init__(
        self,
        message: str = "wrong username, password or one-time code",
        *,
        reason: str = "",
        user_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.reason = reason
        self.user_id = user_id


class LoginThrottledError(LoginFailedError):
    """Raised when an account or a source address has failed too often to try again yet;
    ``retry_after`` is in seconds, ``scope`` is ``"account"`` or ``"address"`` (whose
    failures caused the wait). The credentials were not checked."""

    def __init__(self, retry_after: float, scope: str = "account") -> None:
        super().__init__(
            "too many attempts; wait a few minutes and try again", reason=f"throttled:{scope}"
        )
        self.retry_after = retry_after
        self.scope = scope


class AuthorizationRequestError(SecurityError):
    """Raised when an authorization request cannot be answered by a redirect to the client.

    ``error`` is the RFC 6749 error code, ``description`` a short English sentence.
    """

    def __init__(self, error: str, description: str) -> None:
        super().__init__(f"{error}: {description}")
        self.error = error
        self.description = description
