"""Partner events as they arrive: validated one by one into ``DeviceEvent`` messages.

Event object: ``{"event_id", "device_id", "type", "occurred_at", ...}``; ``occurred_at`` is an
ISO 8601 time with a zone, or epoch seconds. By type:

===================  ========================================================================
``entry``/``exit``   a passage; optional ``request_id``/``reference`` (our command id) and
                     ``vendor_command_id``/``ticket`` (the vendor's) link it to the open
``plate_recognized`` ``plate`` (required)
``pass_presented``   ``code`` (required)
``device_online``    a sign of life / ``device_offline``: the vendor lost the device
``device_jammed``    a fault (also ``device_busy``); ``device_recovered`` clears it
``command_result``   an asynchronous vendor's outcome: ``ticket`` (or ``vendor_command_id``),
                     ``result`` ``"done"`` or ``"failed"``, and ``error`` (the vendor's code)
===================  ========================================================================

Unknown extra fields are ignored (vendors add fields); a missing or malformed field rejects the
event with a reason.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from typing import Any

from propdev.devices.errors import InvalidEventError


@dataclass(frozen=True, slots=True)
class DeviceEvent:
    """Something a partner reported about one of its devices (``POST /partner/v1/events``).

    ``type`` is one of ``EVENT_TYPES``; ``occurred_at`` is epoch seconds.
    ``command_ref`` is our command id when the vendor echoes it (``request_id``/``reference``),
    ``vendor_command_id`` the vendor's own id of the command (``vendor_command_id``/``ticket``).
    """

    partner_id: str
    event_id: str
    device_id: str
    type: str
    occurred_at: float
    plate: str | None = None
    code: str | None = None
    command_ref: str | None = None
    vendor_command_id: str | None = None
    result: str | None = None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class DeviceEvents:
    """Events of one device, to apply in this order; the answer is one outcome per event:
    ``"accepted"``, ``"duplicate"`` or ``"rejected:<reason>"``."""

    events: tuple[DeviceEvent, ...]


@dataclass(frozen=True, slots=True)
class DeviceReports:
    """State reports of one device (``REPORTS``: online/offline, a fault, its recovery), to apply
    beside an open in flight rather than behind it; the answer is as ``DeviceEvents``'.

    A report only says what state the device is in: it opens nothing, links to no open and
    writes no audit entry, and a report older than the last one applied changes nothing, so it
    may overtake the open in progress and the device's other events. It must: an asynchronous
    vendor (acme) confirms the open in progress by a callback it delivers in order, after a
    report it posted first; a report queued behind that open would hold its confirmation until
    the open times out."""

    events: tuple[DeviceEvent, ...]

    def __post_init__(self) -> None:
        others = sorted({e.type for e in self.events if e.type not in REPORTS})
        if others:
            raise ValueError(f"not state reports: {others}")


PASSAGES = frozenset({"entry", "exit"})
CREDENTIALS = {"plate_recognized": "plate", "pass_presented": "code"}
PRESENCE = {"device_online": True, "device_offline": False}
FAULTS: dict[str, str | None] = {
    "device_jammed": "jammed",
    "device_busy": "busy",
    "device_recovered": None,
}
REPORTS = frozenset({*PRESENCE, *FAULTS})
"""State reports: applied beside an open in flight (``DeviceReports``)."""
COMMAND_RESULT = "command_result"
EVENT_TYPES = frozenset(
    {*PASSAGES, *CREDENTIALS, *PRESENCE, *FAULTS, COMMAND_RESULT},
)
RESULTS = frozenset({"done", "failed"})

MAX_ID = 128
MAX_REF = 255
MAX_PLATE = 16
MAX_CODE = 64
EARLIEST = dt.datetime(2000, 1, 1, tzinfo=dt.UTC).timestamp()
MAX_FUTURE = 24 * 3600.0


def _text(raw: dict[str, Any], name: str, limit: int, *, required: bool) -> str | None:
    value = raw.get(name)
    if value is None:
        if required:
            raise InvalidEventError(f"missing_{name}", f"{name!r} is required")
        return None
    if not isinstance(value, str) or not 0 < len(value) <= limit or not value.isprintable():
        raise InvalidEventError(f"invalid_{name}", f"{name!r} must be 1 to {limit} characters")
    return value


def _ref(raw: dict[str, Any], *names: str) -> str | None:
    for name in names:
        value = _text(raw, name, MAX_REF, required=False)
        if value is not None:
            return value
    return None


def occurred_at(value: Any, *, now: float) -> float:
    """Epoch seconds of an ISO 8601 time with a zone, or of a number of epoch seconds."""
    if isinstance(value, bool):
        raise InvalidEventError("invalid_occurred_at", "a time is not a boolean")
    if isinstance(value, int | float):
        at = float(value)
    elif isinstance(value, str) and len(value) <= 64:
        try:
            parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise InvalidEventError("invalid_occurred_at", "not an ISO 8601 time") from None
        if parsed.tzinfo is None:
            raise InvalidEventError("invalid_occurred_at", "the time needs a zone")
        at = parsed.timestamp()
    elif value is None:
        raise InvalidEventError("missing_occurred_at", "'occurred_at' is required")
    else:
        raise InvalidEventError("invalid_occurred_at", "expected an ISO 8601 time")
    if not math.isfinite(at) or at < EARLIEST or at > now + MAX_FUTURE:
        raise InvalidEventError("invalid_occurred_at", "the time is out of range")
    return at


def parse_event(partner_id: str, raw: Any, *, now: float) -> DeviceEvent:
    """One event of a batch as a ``DeviceEvent``; ``InvalidEventError`` says what is wrong."""
    if not isinstance(raw, dict):
        raise InvalidEventError("not_an_object", "each event must be a JSON object")
    event_id = _text(raw, "event_id", MAX_ID, required=True)
    device_id = _text(raw, "device_id", MAX_ID, required=True)
    type_ = raw.get("type")
    if type_ is None:
        raise InvalidEventError("missing_type", "'type' is required")
    if not isinstance(type_, str) or type_ not in EVENT_TYPES:
        raise InvalidEventError("unknown_type", f"'type' must be one of {sorted(EVENT_TYPES)}")
    at = occurred_at(raw.get("occurred_at"), now=now)
    assert event_id is not None and device_id is not None
    plate = _text(raw, "plate", MAX_PLATE, required=type_ == "plate_recognized")
    code = _text(raw, "code", MAX_CODE, required=type_ == "pass_presented")
    command_ref = _ref(raw, "request_id", "reference")
    vendor_command_id = _ref(raw, "vendor_command_id", "ticket")
    result = error = None
    if type_ == COMMAND_RESULT:
        if vendor_command_id is None:
            raise InvalidEventError("missing_ticket", "'ticket' is required")
        result = raw.get("result")
        if result not in RESULTS:
            raise InvalidEventError("invalid_result", f"'result' must be one of {sorted(RESULTS)}")
        error = _text(raw, "error", MAX_ID, required=result == "failed")
    return DeviceEvent(
        partner_id=partner_id,
        event_id=event_id,
        device_id=device_id,
        type=type_,
        occurred_at=at,
        plate=plate,
        code=code,
        command_ref=command_ref,
        vendor_command_id=vendor_command_id,
        result=result,
        error=error,
    )
