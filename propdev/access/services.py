"""``AccessServices``: the access logic of one node, built once and shared by routes and actors."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from propdev.access.desk import AccessDesk
from propdev.access.lockout import KeypadLockout, KeypadPolicy
from propdev.access.notify import LoggingPushProvider, Notifier, Presence, PushProvider
from propdev.access.passes import GuestPasses, PassCodes, load_index_key
from propdev.access.rules import AccessRules, Clock
from propdev.access.vehicles import Vehicles

if TYPE_CHECKING:
    from propdev.registry import Bus
    from propdev.storage import Database


def pass_code_key_path(data_dir: Path) -> Path:
    """Where the key of the guest-pass code index lives (shared by a cluster's nodes)."""
    return data_dir / "keys" / "pass-code-index.key"


@dataclass(slots=True)
class AccessServices:
    rules: AccessRules
    passes: GuestPasses
    vehicles: Vehicles
    desk: AccessDesk
    notifier: Notifier

    @classmethod
    def build(
        cls,
        db: Database,
        bus: Bus,
        *,
        code_key: bytes,
        presence: Presence,
        provider: PushProvider | None = None,
        clock: Clock = time.time,
        keypad: KeypadPolicy | None = None,
        on_keypad: Callable[[str], None] | None = None,
    ) -> AccessServices:
        rules = AccessRules(db, clock=clock)
        passes = GuestPasses(db, rules, PassCodes(code_key), clock=clock)
        vehicles = Vehicles(db, clock=clock)
        lockout = KeypadLockout(keypad, on_event=on_keypad)
        desk = AccessDesk(db, bus, rules, passes, vehicles, clock=clock, lockout=lockout)
        notifier = Notifier(provider or LoggingPushProvider(), presence)
        return cls(rules, passes, vehicles, desk, notifier)

    @classmethod
    def for_data_dir(
        cls,
        db: Database,
        bus: Bus,
        data_dir: Path,
        *,
        presence: Presence,
        keypad: KeypadPolicy | None = None,
        on_keypad: Callable[[str], None] | None = None,
    ) -> AccessServices:
        return cls.build(
            db,
            bus,
            code_key=load_index_key(pass_code_key_path(data_dir)),
            presence=presence,
            keypad=keypad,
            on_keypad=on_keypad,
        )

    def set_clock(self, clock: Clock) -> None:
        """Make every part read ``clock`` (tests move time with it)."""
        self.rules.clock = clock
        self.passes.clock = clock
        self.vehicles.clock = clock
        self.desk.clock = clock

    def subscribe(self, bus: Bus) -> None:
        # local_only: the node that publishes an event decides on its push (exactly one node)
        bus.subscribe("user:", self.notifier.on_event, local_only=True)

    def start(self) -> None:
        self.notifier.start()

    async def stop(self) -> None:
        await self.notifier.stop()
