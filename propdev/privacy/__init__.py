"""The life of residents' personal data (152-FZ art. 14 and 21): export of everything held on
a person, erasure, and retention applied daily and on demand (``docs/personal-data.md``)."""

from __future__ import annotations

from propdev.privacy.command import policy_of, retention_command
from propdev.privacy.erasure import ErasureReport
from propdev.privacy.errors import (
    AlreadyErasedError,
    PrivacyError,
    RetentionError,
    UnknownPersonError,
)
from propdev.privacy.retention import (
    DailyRetention,
    RetentionPolicy,
    RetentionReport,
    apply_retention,
    last_run,
    parse_as_of,
)
from propdev.privacy.service import PersonalData

__all__ = (
    "AlreadyErasedError",
    "DailyRetention",
    "ErasureReport",
    "PersonalData",
    "PrivacyError",
    "RetentionError",
    "RetentionPolicy",
    "RetentionReport",
    "UnknownPersonError",
    "apply_retention",
    "last_run",
    "parse_as_of",
    "policy_of",
    "retention_command",
)
