"""The life of residents' personal data (152-FZ art. 14 and 21): export of everything held on
a person, erasure (re-applied to a restored store from an erasure list), and retention applied
daily and on demand (``docs/personal-data.md``)."""

from __future__ import annotations

from propdev.privacy.command import (
    erasures_export_command,
    policy_of,
    read_erasure_list,
    reapply_command,
    reapply_erasures,
    retention_command,
)
from propdev.privacy.erasure import ErasureReport
from propdev.privacy.erasure_list import Erasure, ErasureList
from propdev.privacy.errors import (
    AlreadyErasedError,
    ErasureListError,
    PrivacyError,
    RetentionError,
    UnknownPersonError,
)
from propdev.privacy.reapply import ReapplyReport, reapply
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
    "Erasure",
    "ErasureList",
    "ErasureListError",
    "ErasureReport",
    "PersonalData",
    "PrivacyError",
    "ReapplyReport",
    "RetentionError",
    "RetentionPolicy",
    "RetentionReport",
    "UnknownPersonError",
    "apply_retention",
    "erasures_export_command",
    "last_run",
    "parse_as_of",
    "policy_of",
    "read_erasure_list",
    "reapply",
    "reapply_command",
    "reapply_erasures",
    "retention_command",
)
