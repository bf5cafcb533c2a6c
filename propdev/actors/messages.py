"""Messages between the front end, device actors and session actors.

Frozen, slotted dataclasses: cheap to make and safe to share between tasks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# A partner's event is the devices layer's; the device actor receives it as a message.
from propdev.devices import DeviceEvent as DeviceEvent
from propdev.devices import DeviceEvents as DeviceEvents
from propdev.devices import DeviceReports as DeviceReports


@dataclass(frozen=True, slots=True)
class OpenAccessPoint:
    """A resident (or an operator, ``on_behalf``) asks the device to open; the answer is an
    ``OpenOutcome`` of the opening pipeline (``propdev.access``), which decides by our rules."""

    access_point_id: str
    user_id: str
    username: str
    command_id: str
    idempotency_key: str | None = None
    traceparent: str | None = None
    on_behalf: str | None = None
    """Who the audit names when not the user themself (e.g. ``operator:<id>`` for a manual open)."""
    note: str = ""
    """A reason stated by the requester (an operator's manual open), kept in the audit entry."""


@dataclass(frozen=True, slots=True)
class DeviceSnapshot:
    """Ask a device actor for its current state."""


@dataclass(frozen=True, slots=True)
class CommandResult:
    """A vendor's ``command_result`` for the device's owner node, whose open waits for it.

    Handled beside the device actor, never queued behind it: the open waits for it outside
    the actor's mailbox (in a task of the actor's), which then records the open in turn. The
    answer is True when an open was waiting for it."""

    event: DeviceEvent


@dataclass(frozen=True, slots=True)
class PartnerCommand:
    """A command for a partner's gRPC command stream, to the node where that stream is open;
    the answer is True when one of its streams there took it."""

    partner_id: str
    command_id: str
    device_id: str
    action: str
    issued_at: float
    deadline: float
    traceparent: str | None = None


@dataclass(frozen=True, slots=True)
class Deliver:
    """Push one event to every WebSocket of a resident's session."""

    event: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Attach:
    """Attach a live connection (anything with ``async send_json``) to a session."""

    connection: Any = field(compare=False)


@dataclass(frozen=True, slots=True)
class Detach:
    connection: Any = field(compare=False)


@dataclass(frozen=True, slots=True)
class SessionPresence:
    """Ask a session how many live connections it holds (0: push instead)."""
