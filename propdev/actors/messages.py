"""Messages between the front end, device actors and session actors.

Frozen, slotted dataclasses: cheap to make and safe to share between tasks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class OpenAccessPoint:
    """A resident (already allowed by our rules) asks the device to open."""

    access_point_id: str
    user_id: str
    username: str
    command_id: str
    idempotency_key: str | None = None
    traceparent: str | None = None


@dataclass(frozen=True, slots=True)
class OpenOutcome:
    """The answer to ``OpenAccessPoint``: an HTTP status and the JSON body for the app."""

    status: int
    body: dict[str, Any]
    replayed: bool = False
    retry_after: float | None = None


@dataclass(frozen=True, slots=True)
class DeviceSnapshot:
    """Ask a device actor for its current state."""


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
