"""``AccessServices``: the access logic of one node, built once and shared by routes and actors
(the opening pipeline among them)."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from propdev.access.lockout import KeypadLockout, KeypadPolicy, Lockout
from propdev.access.notify import Notifier, Presence
from propdev.access.opening import Opening, Publisher
from propdev.access.passes import GuestPasses, PassCodes, load_index_key
from propdev.access.rules import AccessRules, Clock
from propdev.access.vehicles import Vehicles
from propdev.push import Outbox, PushPreferences, PushProvider, PushSender, PushTokens

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
    push_tokens: PushTokens
    outbox: Outbox
    sender: PushSender
    push_preferences: PushPreferences

    @classmethod
    def build(
        cls,
        db: Database,
        bus: EventBus,
        *,
        code_key: bytes,
        presence: Presence,
        providers: Mapping[str, PushProvider] | None = None,
        node_id: str = "local",
        clock: Clock = time.time,
        keypad: KeypadPolicy | None = None,
        on_keypad: Callable[[str], None] | None = None,
        breaker_failures: int = 5,
        breaker_reset: float = 30.0,
        lockout: Lockout | None = None,
    ) -> AccessServices:
        """``lockout``: the cluster's (in Redis); else one in memory from ``keypad``."""
        rules = AccessRules(db, clock=clock)
        passes = GuestPasses(db, rules, PassCodes(code_key), clock=clock)
        vehicles = Vehicles(db, clock=clock)
        lockout = lockout or KeypadLockout(keypad, on_event=on_keypad)
        opening = Opening(db, bus, rules, passes, vehicles, clock=clock, lockout=lockout)
        push_tokens = PushTokens(db, clock=clock)
        outbox = Outbox(db, node_id=node_id, clock=clock)
        sender = PushSender(
            outbox,
            providers or {},
            breaker_failures=breaker_failures,
            breaker_reset=breaker_reset,
        )
        notifier = Notifier(outbox, presence, on_release=sender.wake)
        preferences = PushPreferences(db, clock=clock)
        return cls(
            rules, passes, vehicles, opening, notifier, push_tokens, outbox, sender, preferences
        )

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
        providers: Mapping[str, PushProvider] | None = None,
        node_id: str = "local",
        breaker_failures: int = 5,
        breaker_reset: float = 30.0,
        lockout: Lockout | None = None,
    ) -> AccessServices:
        return cls.build(
            db,
            bus,
            code_key=load_index_key(pass_code_key_path(data_dir)),
            presence=presence,
            keypad=keypad,
            on_keypad=on_keypad,
            providers=providers,
            node_id=node_id,
            breaker_failures=breaker_failures,
            breaker_reset=breaker_reset,
            lockout=lockout,
        )

    def set_clock(self, clock: Clock) -> None:
        """Make every part read ``clock`` (tests move time with it)."""
        self.rules.clock = clock
        self.passes.clock = clock
        self.vehicles.clock = clock
        self.opening.clock = clock
        self.push_tokens.clock = clock
        self.push_preferences.clock = clock
        self.outbox.clock = clock

    def subscribe(self, bus: EventBus) -> None:
        # local_only: the node that publishes an event decides on its push (exactly one node)
        bus.subscribe("user:", self.notifier.on_event, local_only=True)

    def start(self) -> None:
        self.notifier.start()
        self.sender.start()

    async def stop(self) -> None:
        await self.notifier.stop()
        await self.sender.stop()
