"""Errors of account self-service; ``propdev.http.problems`` maps them to problem documents."""

from __future__ import annotations


class AccountError(Exception):
    """Base class of the errors raised by ``propdev.accounts``."""


class InvalidFieldError(AccountError, ValueError):
    """Raised when a request field is missing, of the wrong type, or unknown."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


class WeakPasswordError(InvalidFieldError):
    """Raised when a new password fails the policy (too short, too long, common, the
    username)."""


class WrongPasswordError(AccountError):
    """Raised when the current password given to change it is not the account's."""


class AccountGoneError(AccountError):
    """Raised when the caller's account no longer exists or can no longer sign in."""


class SessionNotFoundError(AccountError, LookupError):
    """Raised when a session is not one of the caller's."""


class InvalidCodeError(AccountError):
    """Raised when a one-time code (password reset, activation) is wrong, used, expired, spent
    its attempts, or the username has no such code: the same error whichever it was."""


class TooManyAttemptsError(AccountError):
    """Raised while a client must wait before trying again (``retry_after`` seconds)."""

    def __init__(self, retry_after: float) -> None:
        super().__init__(f"try again in {retry_after:.0f} s")
        self.retry_after = retry_after
