"""Errors of the storage layer."""

from __future__ import annotations


class StoreError(Exception):
    """Base class of storage errors."""


class StoreUnavailableError(StoreError, ConnectionError):
    """Raised when the database cannot be reached or refuses the connection."""


class MigrationError(StoreError):
    """Raised when the schema cannot be brought to the current version."""
