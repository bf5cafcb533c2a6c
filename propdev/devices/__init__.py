"""Devices as partners report them: event validation, honest presence, the ingest of batches."""

from __future__ import annotations

from propdev.devices.errors import DeviceEventError, IngestUnavailableError, InvalidEventError
from propdev.devices.events import (
    COMMAND_RESULT,
    CREDENTIALS,
    EVENT_TYPES,
    FAULTS,
    PASSAGES,
    PRESENCE,
    REPORTS,
    DeviceEvent,
    DeviceEvents,
    DeviceReports,
    parse_event,
)
from propdev.devices.ingest import MAX_EVENTS, IngestResult, PartnerEventIngest
from propdev.devices.presence import Presence, presence, presence_of

__all__ = (
    "COMMAND_RESULT",
    "CREDENTIALS",
    "EVENT_TYPES",
    "FAULTS",
    "MAX_EVENTS",
    "PASSAGES",
    "PRESENCE",
    "REPORTS",
    "DeviceEvent",
    "DeviceEventError",
    "DeviceEvents",
    "DeviceReports",
    "IngestResult",
    "IngestUnavailableError",
    "InvalidEventError",
    "PartnerEventIngest",
    "Presence",
    "parse_event",
    "presence",
    "presence_of",
)
