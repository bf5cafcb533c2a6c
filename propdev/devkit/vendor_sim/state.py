"""The simulated vendor's state: devices, fault injection, received commands, idempotency.

In-process use calls :class:`VendorSimulator` directly (it is an ``InProcessVendor`` of
``propdev.partners``); ``app.py`` puts the same object behind the vendor's HTTP API. Failures
are raised as ``propdev.partners.VendorError`` carrying the HTTP status and error code the
vendor API answers with; ``ConnectionDropped`` means "close the socket".

Faults (``set_faults``) apply to the vendor API only, never to the control API:

=========  ====================================================================================
``ok``     normal answers after ``latency_ms``
``slow``   normal answers after ``latency_ms`` (``DEFAULT_SLOW_MS`` when 0)
``deny``   opens are refused with ``denied`` (403); reads work
``error``  every vendor call fails with ``internal_error`` (500) after ``latency_ms``
``drop``   every vendor call loses its connection (no answer) after ``latency_ms``
``outage`` every vendor call is refused at once (connection closed, no latency)
=========  ====================================================================================

Callbacks (``callback``): toggling a device through ``update_device`` emits
``device_online``/``device_offline`` (and ``device_jammed``/``device_recovered`` for the state
``jammed``); with ``set_passages(ms)`` each confirmed open is followed, ``ms`` later, by an
``entry`` carrying our ``request_id`` and the ``vendor_command_id`` (and a ``plate`` at a
barrier). Passages are off by default (``set_passages(None)``), so a test that counts events
sees only the ones it asked for.

An open is recorded as a command once the vendor accepts it for processing (``ok``, ``slow``,
``deny``, refusals by the device); ``error``, ``drop`` and ``outage`` record nothing. An
``Idempotency-Key`` (our request id) seen before replays the first answer and records nothing;
failures are not remembered, so a retry after one is processed afresh; the same key for another
device is refused (422 ``idempotency_key_reused``). The last ``MAX_REMEMBERED`` commands and
answers are kept. A command runs to its
end even when the caller stops waiting, as a real vendor's would.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import enum
import random
import uuid
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import structlog

from propdev.partners import ConnectionDropped, DeviceInfo, DeviceKind, VendorError

if TYPE_CHECKING:
    from propdev.partners import RequestVerifier

log = structlog.get_logger()

DEFAULT_SLOW_MS = 10_000
MAX_LATENCY_MS = 600_000
MAX_REMEMBERED = 100_000  # commands listed and answers replayed; the oldest are forgotten

DEFAULT_DEVICES: tuple[DeviceInfo, ...] = (
    DeviceInfo("sim-door-1", "door", "Intercom door 1"),
    DeviceInfo("sim-door-2", "door", "Intercom door 2"),
    DeviceInfo("sim-door-3", "door", "Intercom door 3"),
    DeviceInfo("sim-door-4", "door", "Intercom door 4"),
    DeviceInfo("sim-barrier-1", "barrier", "Parking barrier 1"),
)

# Device states that refuse an open, with the vendor's error code.
REFUSING_STATES = {"jammed": "device_jammed", "busy": "device_busy", "maintenance": "device_busy"}

Callback = Callable[[dict[str, Any]], Awaitable[None]]


class FaultMode(enum.StrEnum):
    OK = "ok"
    SLOW = "slow"
    DENY = "deny"
    ERROR = "error"
    DROP = "drop"
    OUTAGE = "outage"


@dataclass(frozen=True, slots=True)
class Faults:
    mode: FaultMode = FaultMode.OK
    latency_ms: int = 0

    @property
    def delay(self) -> float:
        """Seconds each vendor call waits before answering."""
        if self.mode is FaultMode.SLOW and self.latency_ms == 0:
            return DEFAULT_SLOW_MS / 1000
        return self.latency_ms / 1000

    def as_dict(self) -> dict[str, Any]:
        return {"mode": str(self.mode), "latency_ms": self.latency_ms}


@dataclass(slots=True)
class Device:
    device_id: str
    kind: DeviceKind
    name: str
    online: bool = True
    state: str = ""
    last_seen: dt.datetime | None = None

    def __post_init__(self) -> None:
        self.state = self.state or ("locked" if self.kind == "door" else "closed")

    def as_dict(self) -> dict[str, Any]:
        return {
            "device_id": self.device_id,
            "kind": self.kind,
            "name": self.name,
            "online": self.online,
            "state": self.state,
            "last_seen": self.last_seen.isoformat() if self.last_seen else None,
        }


@dataclass(frozen=True, slots=True)
class OpenAnswer:
    """The vendor's answer to an accepted open."""

    device_id: str
    command_id: str
    confirmed_at: dt.datetime
    status: str = "opened"

    def as_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "command_id": self.command_id,
            "device_id": self.device_id,
            "confirmed_at": self.confirmed_at.isoformat(),
        }


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


PLATE_LETTERS = "ABEKMHOPCTYX"  # the Latin letters Russian plates use


def random_plate() -> str:
    """A plate like ``A123BC77``."""
    pick = random.choice
    digits = "".join(pick("0123456789") for _ in range(3))
    return f"{pick(PLATE_LETTERS)}{digits}{pick(PLATE_LETTERS)}{pick(PLATE_LETTERS)}77"


class VendorSimulator:
    """An intercom/barrier vendor in memory.

    ``callback`` is the hook for events the vendor pushes to us (entry, device_offline, ...):
    the simulator awaits it from :meth:`emit_event`, in a background task of its own.
    """

    def __init__(
        self,
        devices: tuple[DeviceInfo, ...] = DEFAULT_DEVICES,
        *,
        callback: Callback | None = None,
        now: Callable[[], dt.datetime] = _utcnow,
    ) -> None:
        self._catalogue = devices
        self._now = now
        self.callback = callback
        self._devices: dict[str, Device] = {}
        self._faults = Faults()
        self._commands: deque[dict[str, Any]] = deque(maxlen=MAX_REMEMBERED)
        # Idempotency: request id → the task computing (or holding) the first answer.
        self._answers: OrderedDict[str, tuple[str, asyncio.Task[OpenAnswer]]] = OrderedDict()
        self._running: set[asyncio.Task[OpenAnswer]] = set()
        self._background: set[asyncio.Task[Any]] = set()
        self.passage_delay: float | None = None
        self.drain: Callable[[], Awaitable[None]] | None = None  # waits for callbacks to land
        self.signatures: RequestVerifier | None = None  # set: API calls must be signed (RFC 9421)
        self.reset()

    # -- control -----------------------------------------------------------------------------

    @property
    def faults(self) -> Faults:
        return self._faults

    def set_faults(self, mode: FaultMode | str, latency_ms: int = 0) -> Faults:
        """Set the fault mode; ``ValueError`` on an unknown mode or a bad latency."""
        fault_mode = FaultMode(mode)
        if isinstance(latency_ms, bool) or not isinstance(latency_ms, int):
            raise ValueError("latency_ms must be an integer")
        if not 0 <= latency_ms <= MAX_LATENCY_MS:
            raise ValueError(f"latency_ms must be between 0 and {MAX_LATENCY_MS}")
        self._faults = Faults(fault_mode, latency_ms)
        return self._faults

    def commands(self) -> list[dict[str, Any]]:
        """Commands received, oldest first: device_id, command, request_id, traceparent, at."""
        return [dict(c) for c in self._commands]

    def knows(self, request_id: str) -> bool:
        """True when an open with this request id was accepted before (its answer replays)."""
        return request_id in self._answers

    def add_device(
        self, device_id: str, kind: DeviceKind = "door", name: str = "", *, online: bool = True
    ) -> dict[str, Any]:
        """Add (or replace) a device; returns its vendor representation."""
        if kind not in ("door", "barrier"):
            raise ValueError(f"kind must be 'door' or 'barrier', not {kind!r}")
        if not device_id:
            raise ValueError("device_id must not be empty")
        device = Device(device_id, kind, name or device_id, online=online)
        self._devices[device_id] = device
        return device.as_dict()

    def update_device(
        self, device_id: str, *, online: bool | None = None, state: str | None = None
    ) -> dict[str, Any]:
        """Change a device's connectivity or state (``jammed``/``busy`` refuse opens); the
        change is reported through ``callback``."""
        device = self._device(device_id)
        if online is not None and online != device.online:
            device.online = online
            self.spawn(self.emit_event(device_id, "device_online" if online else "device_offline"))
        if state is not None and state != device.state:
            was = device.state
            device.state = state
            if state == "jammed":
                self.spawn(self.emit_event(device_id, "device_jammed"))
            elif was == "jammed":
                self.spawn(self.emit_event(device_id, "device_recovered"))
        return device.as_dict()

    def set_passages(self, after_open_ms: int | None) -> float | None:
        """Follow each confirmed open with an ``entry`` this many ms later (None: never)."""
        if after_open_ms is None:
            self.passage_delay = None
        elif isinstance(after_open_ms, bool) or not isinstance(after_open_ms, int):
            raise ValueError("after_open_ms must be an integer or null")
        elif not 0 <= after_open_ms <= MAX_LATENCY_MS:
            raise ValueError(f"after_open_ms must be between 0 and {MAX_LATENCY_MS}")
        else:
            self.passage_delay = after_open_ms / 1000
        return self.passage_delay

    def spawn(self, coro: Awaitable[Any]) -> None:
        """Run ``coro`` in the background; ``close()`` cancels what is still running."""
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background_done)

    async def settle(self) -> None:
        """Wait for the callbacks (and passages) started so far, and those they start."""
        while self._background:
            await asyncio.gather(*list(self._background), return_exceptions=True)
        if self.drain is not None:
            await self.drain()

    def _background_done(self, task: asyncio.Task[Any]) -> None:
        self._background.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("simulator_callback_failed", error=repr(task.exception()))

    async def passage(self, device_id: str, **fields: Any) -> None:
        """The ``entry`` that follows an open (a plate at a barrier), after ``passage_delay``."""
        delay = self.passage_delay
        if delay is None:
            return
        await asyncio.sleep(delay)
        device = self._devices.get(device_id)
        if device is not None and device.kind == "barrier":
            fields.setdefault("plate", random_plate())
        await self.emit_event(device_id, "entry", **fields)

    def reset(self) -> None:
        """Back to the catalogue, fault mode ``ok``, no commands, no remembered answers."""
        self._answers.clear()
        self._commands.clear()
        self._faults = Faults()
        self.passage_delay = None
        self._devices = {d.device_id: Device(d.device_id, d.kind, d.name) for d in self._catalogue}

    async def close(self) -> None:
        """Cancel commands still being processed and callbacks not yet made."""
        tasks: list[asyncio.Task[Any]] = [*self._running, *self._background]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def emit_event(self, device_id: str, type: str, **fields: Any) -> dict[str, Any]:
        """Build a partner event and hand it to ``callback`` (if any); returns the event."""
        event = {
            "event_id": uuid.uuid4().hex,
            "device_id": device_id,
            "type": type,
            "occurred_at": self._now().isoformat(),
            **fields,
        }
        if self.callback is not None:
            await self.callback(event)
        return event

    # -- vendor API ----------------------------------------------------------------------------

    async def open(
        self,
        device_id: str,
        request_id: str,
        traceparent: str | None = None,
        *,
        passage: bool = True,
    ) -> OpenAnswer:
        """Open ``device_id``; raises ``VendorError`` for refusals and injected faults.

        ``passage=False``: the caller reports the passage itself (acme, with its ticket).
        """
        if not request_id:
            raise VendorError(400, "invalid_request", "an Idempotency-Key is required")
        faults = self._faults
        await self._before_call(faults)
        first = self._answers.get(request_id)
        if first is not None:
            first_device, first_task = first
            if first_device != device_id:
                raise VendorError(
                    422,
                    "idempotency_key_reused",
                    "this Idempotency-Key was used for another device",
                )
            return await asyncio.shield(first_task)
        received_at = self._now()
        self._commands.append(
            {
                "device_id": device_id,
                "command": "open",
                "request_id": request_id,
                "traceparent": traceparent,
                "received_at": received_at.isoformat(),
            }
        )
        task = asyncio.ensure_future(self._execute(device_id, faults))
        self._answers[request_id] = (device_id, task)
        if len(self._answers) > MAX_REMEMBERED:
            self._answers.popitem(last=False)
        self._running.add(task)
        task.add_done_callback(self._finished)
        if passage and self.passage_delay is not None:
            task.add_done_callback(lambda done: self._after_open(done, request_id))
        return await asyncio.shield(task)

    def _after_open(self, task: asyncio.Task[OpenAnswer], request_id: str) -> None:
        if task.cancelled() or task.exception() is not None:
            return
        answer = task.result()
        self.spawn(
            self.passage(
                answer.device_id, request_id=request_id, vendor_command_id=answer.command_id
            )
        )

    async def list_devices(self) -> list[dict[str, Any]]:
        await self._before_call(self._faults)
        return [d.as_dict() for d in self._devices.values()]

    async def device(self, device_id: str) -> dict[str, Any]:
        await self._before_call(self._faults)
        return self._device(device_id).as_dict()

    # -- internals -----------------------------------------------------------------------------

    def _device(self, device_id: str) -> Device:
        try:
            return self._devices[device_id]
        except KeyError:
            raise VendorError(404, "unknown_device", f"no device {device_id!r}") from None

    async def _before_call(self, faults: Faults) -> None:
        """Apply the transport-level faults every vendor call sees."""
        if faults.mode is FaultMode.OUTAGE:
            raise ConnectionDropped("vendor outage")
        if faults.mode in (FaultMode.ERROR, FaultMode.DROP):
            await asyncio.sleep(faults.delay)
            if faults.mode is FaultMode.DROP:
                raise ConnectionDropped()
            raise VendorError(500, "internal_error", "simulated vendor failure")

    def _finished(self, task: asyncio.Task[OpenAnswer]) -> None:
        self._running.discard(task)
        if not task.cancelled():
            task.exception()  # retrieved: a caller that stopped waiting is not an error

    async def _execute(self, device_id: str, faults: Faults) -> OpenAnswer:
        await asyncio.sleep(faults.delay)
        device = self._device(device_id)
        if faults.mode is FaultMode.DENY:
            raise VendorError(403, "denied", f"the vendor denies opening {device_id!r}")
        if not device.online:
            raise VendorError(409, "device_offline", f"device {device_id!r} is offline")
        if device.state in REFUSING_STATES:
            code = REFUSING_STATES[device.state]
            raise VendorError(409, code, f"device {device_id!r} is {device.state}")
        now = self._now()
        device.last_seen = now
        return OpenAnswer(device_id, f"cmd_{uuid.uuid4().hex}", now)
