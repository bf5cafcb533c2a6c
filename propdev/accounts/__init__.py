"""Account self-service: password change and reset, sessions, activation.

Wiring, once per node::

    accounts = Accounts(db, notifier=OutboxNotifier(data_dir / "outbox.jsonl"),
                        throttle=oauth.throttle, requests=ResetRequests.local(200),
                        token_ttl=settings.access_token_ttl)
    accounts.on_grant_revoked = revocations.revoke_grant

Its HTTP routes are ``propdev.http.routes.account``; nothing here imports aiohttp.
"""

from __future__ import annotations

from propdev.accounts.codes import ACTIVATION as ACTIVATION_CODE
from propdev.accounts.codes import MAX_ATTEMPTS as CODE_ATTEMPTS
from propdev.accounts.codes import issue as issue_code
from propdev.accounts.errors import (
    AccountError,
    AccountGoneError,
    InvalidCodeError,
    InvalidFieldError,
    SessionNotFoundError,
    TooManyAttemptsError,
    WeakPasswordError,
    WrongPasswordError,
)
from propdev.accounts.notifier import Message, Notifier, OutboxNotifier
from propdev.accounts.policy import MIN_LENGTH as PASSWORD_MIN_LENGTH
from propdev.accounts.policy import check_new_password, common_passwords
from propdev.accounts.service import (
    ACTIVATE,
    ACTIVATION_CODE_TTL,
    PASSWORD_CHANGE,
    PASSWORD_RESET,
    RESET_CODE_TTL,
    SESSION_REVOKE,
    Accounts,
    ResetRequests,
)
from propdev.accounts.sessions import Session

__all__ = (
    "ACTIVATE",
    "ACTIVATION_CODE",
    "ACTIVATION_CODE_TTL",
    "CODE_ATTEMPTS",
    "PASSWORD_CHANGE",
    "PASSWORD_MIN_LENGTH",
    "PASSWORD_RESET",
    "RESET_CODE_TTL",
    "SESSION_REVOKE",
    "AccountError",
    "AccountGoneError",
    "Accounts",
    "InvalidCodeError",
    "InvalidFieldError",
    "Message",
    "Notifier",
    "OutboxNotifier",
    "ResetRequests",
    "Session",
    "SessionNotFoundError",
    "TooManyAttemptsError",
    "WeakPasswordError",
    "WrongPasswordError",
    "check_new_password",
    "common_passwords",
    "issue_code",
)
