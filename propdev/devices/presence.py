"""Honest device state: online, offline or unknown, with the age of the last sign of life.

Computed from the clock at read time (no timer per device): a device last seen online longer
ago than the heartbeat interval is ``unknown``, not "online" for ten more minutes. A device its
vendor reported offline stays ``offline`` until a sign of life. A fault (``jammed``) shows as the
state of a device that is otherwise online.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Presence:
    """What the API shows of a device: ``online`` is True, False or None (unknown)."""

    online: bool | None
    state: str
    last_seen_age_s: float | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "online": self.online,
            "state": self.state,
            "last_seen_age_s": self.last_seen_age_s,
        }


def presence(
    *,
    online: bool | None,
    last_seen: float | None,
    fault: str | None,
    now: float,
    heartbeat: float,
) -> Presence:
    """The device's presence at ``now`` given its last known state."""
    age = None if last_seen is None else round(max(0.0, now - last_seen), 3)
    if online is False:
        return Presence(False, "offline", age)
    if age is None or online is None or age > heartbeat:
        return Presence(None, "unknown", age)
    return Presence(True, fault or "online", age)


def presence_of(state: dict[str, Any], *, now: float, heartbeat: float) -> Presence:
    """``presence`` of a stored device state (``device_state.state`` JSON, or a snapshot)."""
    return presence(
        online=state.get("online"),
        last_seen=state.get("last_seen"),
        fault=state.get("fault"),
        now=now,
        heartbeat=heartbeat,
    )
