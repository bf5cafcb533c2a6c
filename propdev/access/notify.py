"""Which resident events are pushed to phones: those no live socket received.

Every resident event goes over the bus to their live WebSockets and stays in the event store;
an event of a pushed type (``propdev.push.PUSHED``) also has outbox rows, one per device,
written in its transaction and *held*. The ``Notifier`` listens to the same bus on the node
that published the event: when the resident has a live socket it withholds the rows (the app
got it), otherwise it releases them to the sender (``propdev.push.PushSender``) at once.

The decision is off the request path: a bounded queue feeds one worker. A full queue or a node
that dies before deciding leaves the rows held: they fall due after ``propdev.push.HOLD``
seconds and are sent all the same (a push rather than none).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import structlog

from propdev.push import PUSHED

log = structlog.get_logger()

# How many live sockets a resident has (0: the app is closed).
Presence = Callable[[str], Awaitable[int]]

QUEUE_CAPACITY = 1000


class Pushes(Protocol):
    """The outbox as the notifier uses it (``propdev.push.Outbox``)."""

    async def release(self, event_id: int) -> int: ...

    async def withhold(self, event_id: int) -> int: ...


class Notifier:
    """Decides, per pushed event, between the socket and the phones. Subscribe ``on_event`` to
    the bus prefix ``user:``; ``start``/``stop`` bracket the worker."""

    def __init__(
        self,
        pushes: Pushes,
        presence: Presence,
        *,
        on_release: Callable[[], None] = lambda: None,
        capacity: int = QUEUE_CAPACITY,
    ) -> None:
        self.pushes = pushes
        self.presence = presence
        self.on_release = on_release
        self._queue: asyncio.Queue[tuple[str, dict[str, Any]]] = asyncio.Queue(capacity)
        self._worker: asyncio.Task[None] | None = None
        self.released = 0
        self.withheld = 0
        self.dropped = 0  # decisions not taken (full queue): the rows fall due on their own
        self.failed = 0

    async def on_event(self, channel: str, event: dict[str, Any]) -> None:
        if event.get("type") not in PUSHED or not isinstance(event.get("id"), int):
            return
        user_id = channel.removeprefix("user:")
        try:
            self._queue.put_nowait((user_id, event))
        except asyncio.QueueFull:
            self.dropped += 1
            log.warning("push_undecided", user_id=user_id, event_id=event.get("id"))

    def start(self) -> None:
        if self._worker is None:
            self._worker = asyncio.create_task(self._work(), name="push-notifier")

    async def stop(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
            self._worker = None

    async def idle(self) -> None:
        """Wait until every queued event has been decided (tests, shutdown)."""
        await self._queue.join()

    async def _work(self) -> None:
        while True:
            user_id, event = await self._queue.get()
            try:
                await self._consider(user_id, event)
            finally:
                self._queue.task_done()

    async def _consider(self, user_id: str, event: dict[str, Any]) -> None:
        event_id = int(event["id"])
        fields = {"user_id": user_id, "event_id": event_id, "event_type": event.get("type")}
        try:
            if await self.presence(user_id) > 0:
                devices = await self.pushes.withhold(event_id)
                self.withheld += 1
                log.info("push_withheld", devices=devices, **fields)
                return
            devices = await self.pushes.release(event_id)
            self.released += 1
            log.info("push_released", devices=devices, **fields)
            if devices:
                self.on_release()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the rows stay held and fall due on their own
            self.failed += 1
            log.warning("push_undecided", error=repr(exc), **fields)
