"""The housing-and-utilities (ЖКХ) gateway: residents' bills and meter readings, proxied to
the housing-and-utilities system (in-process in embedded mode, else over HTTPS) behind a
breaker, a bulkhead and a timeout; readings validated before they are forwarded, stored and
audited. Its routes are ``/gateway/v1/utilities/...`` and its settings ``PROPDEV_UTILITIES_*``
(the external names); the simulated system and the demo accounts are in ``propdev.devkit``."""

from __future__ import annotations

from propdev.housing.client import (
    HttpUtilitiesClient,
    InProcessUtilities,
    InProcessUtilitiesClient,
    UpstreamDropped,
    UpstreamError,
    UtilitiesClient,
)
from propdev.housing.errors import InvalidReadingError, NoAccountError, UtilitiesError
from propdev.housing.gateway import UPSTREAM, UtilitiesGateway
from propdev.housing.meters import (
    KINDS,
    Meter,
    MeterKind,
    MeterType,
    Reading,
    check_progress,
    format_value,
    iso,
    parse_reading,
)
from propdev.housing.service import UtilitiesService
from propdev.housing.store import Account, UtilityStore, to_milli

__all__ = (
    "KINDS",
    "UPSTREAM",
    "Account",
    "HttpUtilitiesClient",
    "InProcessUtilities",
    "InProcessUtilitiesClient",
    "InvalidReadingError",
    "Meter",
    "MeterKind",
    "MeterType",
    "NoAccountError",
    "Reading",
    "UpstreamDropped",
    "UpstreamError",
    "UtilitiesClient",
    "UtilitiesError",
    "UtilitiesGateway",
    "UtilitiesService",
    "UtilityStore",
    "check_progress",
    "format_value",
    "iso",
    "parse_reading",
    "to_milli",
)
