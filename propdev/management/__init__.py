"""Device and resident management for operators: the estate (sites, buildings, apartments),
access points and their devices (one by one, from CSV, or synced from a partner's list),
residents (invite, move out) and rights; every change is audited."""

from __future__ import annotations

from propdev.management.changes import operator
from propdev.management.cutoffs import SessionCutoffs
from propdev.management.errors import (
    ConflictError,
    InvalidFieldError,
    ManagementError,
    NoGatewayError,
    NotOwnerError,
    PartnerRequestError,
    UnknownObjectError,
)
from propdev.management.imports import COLUMNS, MAX_LINES, ImportReport, decode
from propdev.management.live_partners import LivePartners, adapter_spec, partner_url
from propdev.management.partners import SECRET_OVERLAP, PartnerRecord, PartnerRegistry
from propdev.management.points import Point, PointSpec
from propdev.management.service import Management

__all__ = (
    "COLUMNS",
    "MAX_LINES",
    "SECRET_OVERLAP",
    "ConflictError",
    "ImportReport",
    "InvalidFieldError",
    "LivePartners",
    "Management",
    "ManagementError",
    "NoGatewayError",
    "NotOwnerError",
    "PartnerRecord",
    "PartnerRegistry",
    "PartnerRequestError",
    "Point",
    "PointSpec",
    "SessionCutoffs",
    "UnknownObjectError",
    "adapter_spec",
    "decode",
    "operator",
    "partner_url",
)
