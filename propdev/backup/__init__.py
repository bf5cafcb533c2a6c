"""Backup and restore: one encrypted, consistent snapshot of the store and the data dir.

``create(settings, path)`` while nodes serve; ``verify(settings, path)`` checks a file without
writing; ``restore(settings, path)`` fills an empty data dir and store. See ``docs/backup.md``.
"""

from __future__ import annotations

from propdev.backup.errors import (
    BackupError,
    DamagedBackupError,
    NoMasterKeyError,
    TargetNotEmptyError,
    UnsupportedBackupError,
    WrongKeyError,
)
from propdev.backup.service import configured_master_key, create, describe, restore, verify

__all__ = (
    "BackupError",
    "DamagedBackupError",
    "NoMasterKeyError",
    "TargetNotEmptyError",
    "UnsupportedBackupError",
    "WrongKeyError",
    "configured_master_key",
    "create",
    "describe",
    "restore",
    "verify",
)
