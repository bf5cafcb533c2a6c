"""``AccessServices``: the access logic of one node, built once and shared by routes and actors
(the opening pipeline among them)."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from propdev.access.lockout import KeypadLockout, KeypadPolicy, Lockout
from propdev.access.notify import LoggingPushProvider, Notifier, Presence, PushProvider
from propdev.access.opening import Opening, Publisher
from propdev.access.passes import GuestPasses, PassCodes, load_index_key
from propdev.access.rules import AccessRules, Clock
from propdev.access.vehicles import Vehicles

if TYPE_CHECKING:
    from propdev.storage import Database


class EventBus(Publisher, Protocol):
    """The bus as access logic uses it: publish a resident's event, hear them for push."""

    def subscribe(
        self,
        prefix: str,
        handler: Callable[[str, dict[str, Any]], Awaitable[None]],
        *,
        local_only: bool = False,
    ) -> None: ...


def pass_code_key_path(data_dir: Path) -> Path:
    """Where the key of the guest-pass code index lives (shared by a cluster's nodes)."""
    return data_dir / "keys" / "pass-code-index.key"


@dataclass(slots=True)
class AccessServices:
    rules: AccessRules
    passes: GuestPasses
    vehicles: Vehicles
    opening: Opening
    notifier: Notifier

    @classmethod
    def build(
        cls,
        db: Database,
        bus: EventBus,
        *,
        code_key: bytes,
        presence: Presence,
        provider: PushProvider | None = None,
        clock: Clock = time.time,
        keypad: KeypadPolicy | None = None,
        on_keypad: Callable[[str], None] | None = None,
        lockout: Lockout | None = None,
    ) -> AccessServices:
        """``lockout``: the cluster's (in Redis); else one in memory from ``keypad``."""
        rules = AccessRules(db, clock=clock)
        passes = GuestPasses(db, rules, PassCodes(code_key), clock=clock)
        vehicles = Vehicles(db, clock=clock)
        lockout = lockout or KeypadLockout(keypad, on_event=on_keypad)
        opening = Opening(db, bus, rules, passes, vehicles, clock=clock, lockout=lockout)
        notifier = Notifier(provider or LoggingPushProvider(), presence)
        return cls(rules, passes, vehicles, opening, notifier)

    @classmethod
    def for_data_dir(
        cls,
        db: Database,
        bus: EventBus,
        data_dir: Path,
        *,
        presence: Presence,
        keypad: KeypadPolicy | None = None,
        on_keypad: Callable[[str], None] | None = None,
        lockout: Lockout | None = None,
    ) -> AccessServices:
        return cls.build(
            db,
            bus,
            code_key=load_index_key(pass_code_key_path(data_dir)),
            presence=presence,
            keypad=keypad,
            on_keypad=on_keypad,
            lockout=lockout,
        )

    def set_clock(self, clock: Clock) -> None:
        """Make every part read ``clock`` (tests move time with it)."""
        self.rules.clock = clock
        self.passes.clock = clock
        self.vehicles.clock = clock
        self.opening.clock = clock

    def subscribe(self, bus: EventBus) -> None:
        # local_only: the node that publishes an event decides on its push (exactly one node)
        bus.subscribe("user:", self.notifier.on_event, local_only=True)

    def start(self) -> None:
        self.notifier.start()

    async def stop(self) -> None:
        await self.notifier.stop()
