"""Errors of the audit's integrity: checkpoint keys, checkpoints, proofs."""

from __future__ import annotations


class IntegrityError(Exception):
    """Base class of the audit integrity errors."""


class CheckpointKeyError(IntegrityError, ValueError):
    """Raised when a checkpoint key or verifier key cannot be read or parsed."""


class BadCheckpointError(IntegrityError):
    """Raised when a checkpoint's note is malformed or no known key's signature verifies."""


class InconsistentChainsError(IntegrityError):
    """Raised when the chains no longer hold the heads the last checkpoint signed: the
    signer refuses to sign a checkpoint inconsistent with it."""


class NotCheckpointedError(IntegrityError, LookupError):
    """Raised when an entry is unknown or not yet under any checkpoint."""
