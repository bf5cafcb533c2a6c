"""Errors of backup and restore; each message says what is wrong, never a secret."""

from __future__ import annotations


class BackupError(Exception):
    """Base class of backup and restore errors."""


class WrongKeyError(BackupError):
    """Raised when a backup was made under another master key than the configured one."""


class DamagedBackupError(BackupError, ValueError):
    """Raised when a backup file does not authenticate, is truncated or is not a backup."""


class UnsupportedBackupError(BackupError, ValueError):
    """Raised when a backup's format (or schema) version is one this code does not know."""


class TargetNotEmptyError(BackupError):
    """Raised when a restore's data dir or store already holds something."""


class NoMasterKeyError(BackupError):
    """Raised when no master key is configured or found (a backup never invents one)."""
