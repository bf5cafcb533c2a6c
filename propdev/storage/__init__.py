"""Storage: one data-access layer over SQLite and PostgreSQL, with migrations."""

from __future__ import annotations

from propdev.storage.db import Database, Row, UnitConnection, run, sync_run
from propdev.storage.errors import MigrationError, StoreError, StoreUnavailableError
from propdev.storage.migrations import (
    CURRENT_VERSION,
    MIGRATIONS,
    Recorded,
    foreign_versions,
    migrate,
)

__all__ = (
    "CURRENT_VERSION",
    "MIGRATIONS",
    "Database",
    "MigrationError",
    "Recorded",
    "Row",
    "StoreError",
    "StoreUnavailableError",
    "UnitConnection",
    "foreign_versions",
    "migrate",
    "run",
    "sync_run",
)
