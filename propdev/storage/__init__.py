"""Storage: one data-access layer over SQLite and PostgreSQL, with migrations."""

from __future__ import annotations

from propdev.storage.db import Database, Row, UnitConnection, run, sync_run
from propdev.storage.errors import MigrationError, StoreError, StoreUnavailableError
from propdev.storage.migrations import CURRENT_VERSION, migrate

__all__ = (
    "CURRENT_VERSION",
    "Database",
    "MigrationError",
    "Row",
    "StoreError",
    "StoreUnavailableError",
    "UnitConnection",
    "migrate",
    "run",
    "sync_run",
)
