"""Keypad lockout: a device where wrong guest-pass codes are typed again and again stops
taking codes for a while.

After ``attempts`` unknown codes within ``window`` seconds at one device, every code presented
there is refused for ``cooldown`` seconds — the right one too, and without being looked up —
so guessing eight digits costs the guesser time, not us a use of someone's pass. A known code
ends the device's run of wrong ones. A code of a pass that cannot be used (revoked, expired,
used up) is not a guess and does not count.

Every code presented at a device is decided by the device's actor, on the node that owns it,
whichever node the partner's event came to: attempts through different nodes already meet
there. What a cluster must share is the state itself, because the owner changes (a node is
drained, dies, or joins and takes shards): embedded, ``KeypadLockout`` keeps it in memory; in a
cluster ``RedisKeypadLockout`` (``propdev.access.shared_lockout``) keeps it in the cluster's
Redis, so a new owner goes on counting where the old one stopped, and every node's console
shows it. Both have the ``Lockout`` interface. Counters per device are shown in the device's
snapshot.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

import structlog

log = structlog.get_logger()

LOCKED_OUT = "locked_out"
LOCKED = "locked"  # ``on_event``: a device was just locked
REFUSED = "refused"  # ``on_event``: a code was refused at a locked device


@dataclass(frozen=True, slots=True)
class KeypadPolicy:
    """How many unknown codes within how many seconds lock a device, and for how long."""

    attempts: int = 5
    window: float = 300.0
    cooldown: float = 300.0

    def __post_init__(self) -> None:
        if self.attempts < 1 or self.window <= 0 or self.cooldown <= 0:
            raise ValueError(f"invalid keypad policy {self!r}")


class Lockout(Protocol):
    """The keypad lockout as the opening pipeline and the console use it."""

    policy: KeypadPolicy

    async def refuse(self, device: str, now: float) -> float | None:
        """If the device is locked: count a refused code and return until when; else None."""
        ...

    async def wrong(self, device: str, now: float) -> bool:
        """Count an unknown code; True when it locks the device."""
        ...

    async def right(self, device: str) -> None:
        """A known code: the run of wrong ones at this device ends."""
        ...

    async def snapshots(self, devices: Iterable[str], now: float) -> dict[str, dict[str, Any]]:
        """Each device's keypad as operators see it."""
        ...


@dataclass(slots=True)
class _Keypad:
    wrong: deque[float] = field(default_factory=deque)  # times of recent unknown codes
    locked_until: float | None = None
    lockouts: int = 0
    refused: int = 0


class KeypadLockout:
    """Per-device windowed counters of unknown codes, and the cooldown they trigger, in memory
    (``Lockout``; the ``*_now`` methods are the same, synchronous)."""

    def __init__(
        self,
        policy: KeypadPolicy | None = None,
        *,
        on_event: Callable[[str], None] | None = None,
    ) -> None:
        self.policy = policy or KeypadPolicy()
        self.on_event = on_event
        self._keypads: dict[str, _Keypad] = {}

    def locked_until(self, device: str, now: float) -> float | None:
        """When the device takes codes again, if it is locked at ``now``."""
        keypad = self._keypads.get(device)
        if keypad is None or keypad.locked_until is None:
            return None
        if now >= keypad.locked_until:
            keypad.locked_until = None
            self._forget_if_idle(device, keypad)
            return None
        return keypad.locked_until

    async def refuse(self, device: str, now: float) -> float | None:
        return self.refuse_now(device, now)

    async def wrong(self, device: str, now: float) -> bool:
        return self.wrong_now(device, now)

    async def right(self, device: str) -> None:
        self.right_now(device)

    async def snapshots(self, devices: Iterable[str], now: float) -> dict[str, dict[str, Any]]:
        return {device: self.snapshot(device, now) for device in devices}

    def refuse_now(self, device: str, now: float) -> float | None:
        """If the device is locked: count a refused code and return until when; else None."""
        until = self.locked_until(device, now)
        if until is not None:
            self._keypads[device].refused += 1
            self._emit(REFUSED)
        return until

    def wrong_now(self, device: str, now: float) -> bool:
        """Count an unknown code; True when it locks the device."""
        keypad = self._keypads.setdefault(device, _Keypad())
        self._expire(keypad, now)
        keypad.wrong.append(now)
        if len(keypad.wrong) < self.policy.attempts:
            return False
        keypad.wrong.clear()
        keypad.locked_until = now + self.policy.cooldown
        keypad.lockouts += 1
        log.warning(
            "keypad_locked_out",
            access_point_id=device,
            attempts=self.policy.attempts,
            window_s=self.policy.window,
            until=keypad.locked_until,
        )
        self._emit(LOCKED)
        return True

    def right_now(self, device: str) -> None:
        """A known code: the run of wrong ones at this device ends."""
        keypad = self._keypads.get(device)
        if keypad is not None:
            keypad.wrong.clear()
            self._forget_if_idle(device, keypad)

    def snapshot(self, device: str, now: float) -> dict[str, Any]:
        """The device's keypad as operators see it."""
        until = self.locked_until(device, now)
        keypad = self._keypads.get(device) or _Keypad()
        self._expire(keypad, now)
        return {
            "locked_out": until is not None,
            "locked_until": until,
            "wrong_codes": len(keypad.wrong),
            "lockouts": keypad.lockouts,
            "refused_while_locked": keypad.refused,
        }

    def _expire(self, keypad: _Keypad, now: float) -> None:
        while keypad.wrong and keypad.wrong[0] <= now - self.policy.window:
            keypad.wrong.popleft()

    def _forget_if_idle(self, device: str, keypad: _Keypad) -> None:
        # Keep devices with history (their counters are shown); drop only blank entries.
        if not keypad.wrong and keypad.locked_until is None and not keypad.lockouts:
            self._keypads.pop(device, None)

    def _emit(self, event: str) -> None:
        if self.on_event is not None:
            self.on_event(event)
