"""Domain errors as problems: one table from error class to status and problem type.

Domain code raises its own errors (``propdev.management``, ``propdev.access``,
``propdev.partners``, ``propdev.storage``) and knows nothing of HTTP. The problems middleware
(``request_context_middleware``) looks an unhandled error up here by its class's MRO, so the
most specific entry wins and a subclass needs no entry of its own; an error found nowhere is a
bug, answered 500. A handler may still catch an error itself to say more than this table does.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

from propdev.access import InvalidFieldError as AccessInvalidFieldError
from propdev.accounts import (
    AccountGoneError,
    InvalidCodeError,
    SessionNotFoundError,
    TooManyAttemptsError,
    WeakPasswordError,
    WrongPasswordError,
)
from propdev.accounts import InvalidFieldError as AccountInvalidFieldError
from propdev.http.access_problems import ConflictError, invalid
from propdev.http.errors import (
    BadRequestError,
    ForbiddenError,
    NotFoundError,
    ProblemError,
    ServiceUnavailableError,
    StoreDownError,
    TooManyRequestsError,
)
from propdev.management import ConflictError as ManagementConflictError
from propdev.management import InvalidFieldError as ManagementInvalidFieldError
from propdev.management import (
    NoGatewayError,
    NotOwnerError,
    PartnerRequestError,
    UnknownObjectError,
)
from propdev.partners import BulkheadFullError, CircuitOpenError, PartnerError, PartnerTimeoutError
from propdev.privacy import AlreadyErasedError, UnknownPersonError
from propdev.staff import (
    InvalidStaffFieldError,
    NotPermittedError,
    OutOfScopeError,
    StaffConflictError,
)
from propdev.storage import StoreUnavailableError

STORE_RETRY_AFTER = 2  # seconds: a database restart or fail-over takes a few
PARTNER_RETRY_AFTER = 5  # seconds: a partner's circuit, a node without its gateway


class BadGatewayError(ProblemError):
    """Raised when a partner's API gave no usable answer."""

    status, kind, title = 502, "partner-unavailable", "Bad gateway"


class GatewayTimeoutError(ProblemError):
    """Raised when a partner's API did not answer in time."""

    status, kind, title = 504, "partner-timeout", "Gateway timeout"


class WeakPasswordProblem(BadRequestError):
    """Raised when a new password fails the policy; ``field`` names it."""

    kind, title = "weak-password", "Weak password"


class InvalidCodeProblem(BadRequestError):
    """Raised when a one-time code is wrong, used or expired (never saying which)."""

    kind, title = "invalid-code", "Invalid code"


class WrongPasswordProblem(ForbiddenError):
    """Raised when the current password given to change it is wrong."""

    kind, title = "wrong-password", "Wrong password"


def _account_field(exc: AccountInvalidFieldError) -> ProblemError:
    return BadRequestError(f"{exc.field}: {exc.reason}", extra={"field": exc.field})


def _weak_password(exc: WeakPasswordError) -> ProblemError:
    return WeakPasswordProblem(f"{exc.field}: {exc.reason}", extra={"field": exc.field})


def _invalid_code(exc: InvalidCodeError) -> ProblemError:
    return InvalidCodeProblem("The code is wrong, used or expired.")


def _wrong_password(exc: WrongPasswordError) -> ProblemError:
    return WrongPasswordProblem("The current password is wrong.")


def _account_gone(exc: AccountGoneError) -> ProblemError:
    return NotFoundError("You have no account here that can sign in.")


def _no_session(exc: SessionNotFoundError) -> ProblemError:
    return NotFoundError("No such session of yours.")


def _too_many_attempts(exc: TooManyAttemptsError) -> ProblemError:
    return TooManyRequestsError(
        "Too many attempts; wait before trying again.",
        headers={"Retry-After": str(max(1, math.ceil(exc.retry_after)))},
    )


def store_down() -> StoreDownError:
    """The 503 of a request that needed the database while it could not be reached."""
    return StoreDownError(
        "The store cannot be reached right now; retry shortly.",
        headers={"Retry-After": str(STORE_RETRY_AFTER)},
    )


def _store_unavailable(exc: StoreUnavailableError) -> ProblemError:
    return store_down()


def _bad_partner_request(exc: PartnerRequestError) -> ProblemError:
    return BadRequestError(f"{exc.field}: {exc.detail}", extra={"field": exc.field})


def _unknown(exc: UnknownObjectError) -> ProblemError:
    return NotFoundError(f"No {exc.kind} {exc.object_id!r}.")


def _conflict(exc: ManagementConflictError) -> ProblemError:
    return ConflictError(exc.detail, extra={"field": exc.field} if exc.field else {})


def _unknown_person(exc: UnknownPersonError) -> ProblemError:
    return NotFoundError(f"No resident {exc.user_id!r}.")


def _erased(exc: AlreadyErasedError) -> ProblemError:
    return ConflictError(f"Resident {exc.user_id!r} was erased already; nothing was changed.")


def _not_owner(exc: NotOwnerError) -> ProblemError:
    return ForbiddenError("Only an apartment's owner invites or removes household members.")


def _not_permitted(exc: NotPermittedError) -> ProblemError:
    return ForbiddenError(exc.detail)


def _out_of_scope(exc: OutOfScopeError) -> ProblemError:
    return NotFoundError(f"No {exc.kind} {exc.ident!r}.")


def _staff_field(exc: InvalidStaffFieldError) -> ProblemError:
    return BadRequestError(f"{exc.field}: {exc.detail}", extra={"field": exc.field})


def _staff_conflict(exc: StaffConflictError) -> ProblemError:
    return ConflictError(exc.detail, extra={"field": exc.field} if exc.field else {})


def _no_gateway(exc: NoGatewayError) -> ProblemError:
    return ServiceUnavailableError(str(exc), headers={"Retry-After": str(PARTNER_RETRY_AFTER)})


def _not_called(exc: CircuitOpenError | BulkheadFullError) -> ProblemError:
    return ServiceUnavailableError(
        f"The partner is not called now: {exc}",
        headers={"Retry-After": str(PARTNER_RETRY_AFTER)},
    )


def _partner_timeout(exc: PartnerTimeoutError) -> ProblemError:
    return GatewayTimeoutError("The partner did not answer in time.")


def _partner_failed(exc: PartnerError) -> ProblemError:
    return BadGatewayError(f"The partner gave no usable answer: {exc}")


PROBLEMS: Mapping[type[Exception], Callable[[Any], ProblemError]] = {
    PartnerRequestError: _bad_partner_request,  # 400 bad-request, ``field`` names it
    ManagementInvalidFieldError: invalid,  # 422 invalid-field, ``field`` names it
    AccessInvalidFieldError: invalid,
    UnknownObjectError: _unknown,  # 404 not-found
    ManagementConflictError: _conflict,  # 409 conflict, ``field`` when one is to blame
    UnknownPersonError: _unknown_person,  # 404 not-found (erased included)
    AlreadyErasedError: _erased,  # 409 conflict
    NoGatewayError: _no_gateway,  # 503 unavailable + Retry-After
    CircuitOpenError: _not_called,  # 503 unavailable + Retry-After
    BulkheadFullError: _not_called,
    PartnerTimeoutError: _partner_timeout,  # 504 partner-timeout
    PartnerError: _partner_failed,  # 502 partner-unavailable (refusals included)
    StoreUnavailableError: _store_unavailable,  # 503 store-unavailable + Retry-After
    WeakPasswordError: _weak_password,  # 400 weak-password, ``field`` names it
    AccountInvalidFieldError: _account_field,  # 400 bad-request, ``field`` names it
    InvalidCodeError: _invalid_code,  # 400 invalid-code
    WrongPasswordError: _wrong_password,  # 403 wrong-password
    AccountGoneError: _account_gone,  # 404 not-found
    SessionNotFoundError: _no_session,  # 404 not-found
    TooManyAttemptsError: _too_many_attempts,  # 429 rate-limited + Retry-After
    NotPermittedError: _not_permitted,  # 403 forbidden: the role may not
    NotOwnerError: _not_owner,  # 403 forbidden: a household member, not its owner
    OutOfScopeError: _out_of_scope,  # 404 not-found: not in the caller's sites
    InvalidStaffFieldError: _staff_field,  # 400 bad-request, ``field`` names it
    StaffConflictError: _staff_conflict,  # 409 conflict (username taken, last admin)
}
"""Domain error class -> the problem that answers it (status, type, title, detail, extras)."""


def problem_for(exc: BaseException) -> ProblemError | None:
    """The problem answering ``exc``: its own when it is one, else the table's entry for the
    nearest class of its MRO; None when none has one (a bug: 500)."""
    if isinstance(exc, ProblemError):
        return exc
    for cls in type(exc).__mro__:
        render = PROBLEMS.get(cls)
        if render is not None:
            return render(exc)
    return None


__all__ = (
    "PROBLEMS",
    "STORE_RETRY_AFTER",
    "BadGatewayError",
    "GatewayTimeoutError",
    "problem_for",
    "store_down",
)
