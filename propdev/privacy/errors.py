"""Errors of the personal-data lifecycle, in its own terms; ``propdev.http.problems`` answers
each with its problem (the CLI prints it)."""

from __future__ import annotations


class PrivacyError(Exception):
    """Base class of personal-data lifecycle errors."""


class UnknownPersonError(PrivacyError, LookupError):
    """Raised when no resident has this id, or the resident was erased (nothing is held)."""

    def __init__(self, user_id: str) -> None:
        super().__init__(f"no resident {user_id!r}")
        self.user_id = user_id


class AlreadyErasedError(PrivacyError):
    """Raised when a resident is erased again: nothing is changed."""

    def __init__(self, user_id: str, erased_at: float) -> None:
        super().__init__(f"resident {user_id!r} was erased already")
        self.user_id = user_id
        self.erased_at = erased_at


class RetentionError(PrivacyError, ValueError):
    """Raised when a retention run is refused (an ``as_of`` that is malformed, in the future,
    or earlier than the last run's): nothing is changed."""


class ErasureListError(PrivacyError, ValueError):
    """Raised when a file of erasures to re-apply is malformed, or not this cluster's: nothing
    is changed."""
