"""Push notifications for residents whose app is closed.

Every resident event goes over the bus to their live WebSockets and stays in the event store.
The ``Notifier`` listens to the same bus; for an event whose resident has no live socket it
hands a ``PushMessage`` to a ``PushProvider`` -- the interface an FCM or APNs adapter
implements (device tokens, credentials and retries are the adapter's business). The embedded
default, ``LoggingPushProvider``, writes one log record per push.

Delivery is best effort and off the request path: a bounded queue feeds one worker, so a slow
provider delays pushes, never opens; a full queue drops the push (the event itself is stored).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import structlog

log = structlog.get_logger()

# How many live sockets a resident has (0: the app is closed).
Presence = Callable[[str], Awaitable[int]]

QUEUE_CAPACITY = 1000

TITLES = {
    "access.granted": "Door opened",
    "access.denied": "Access refused",
    "access.automatic": "Barrier opened for your car",
    "access.entry": "Entry",
    "access.exit": "Exit",
    "pass.used": "Your guest pass was used",
    "pass.denied": "Your guest pass was refused",
}


@dataclass(frozen=True, slots=True)
class PushMessage:
    """What a push provider sends to one resident's devices."""

    user_id: str
    title: str
    body: str
    data: dict[str, Any] = field(default_factory=dict)
    collapse_key: str | None = None


class PushProvider(Protocol):
    """An FCM/APNs-style sender; ``send`` raises on a failure the provider could not absorb."""

    name: str

    async def send(self, message: PushMessage) -> None: ...


class LoggingPushProvider:
    """The embedded default: one ``push_sent`` log record per push."""

    name = "log"

    async def send(self, message: PushMessage) -> None:
        log.info(
            "push_sent",
            provider=self.name,
            user_id=message.user_id,
            title=message.title,
            event_id=message.data.get("id"),
            event_type=message.data.get("type"),
        )


def push_for(user_id: str, event: dict[str, Any]) -> PushMessage:
    """The push of one resident event: a title, a short body, the event as data."""
    kind = str(event.get("type", "event"))
    title = TITLES.get(kind, kind)
    parts = [str(event[k]) for k in ("access_point_id", "plate_hint", "reason") if event.get(k)]
    return PushMessage(
        user_id=user_id,
        title=title,
        body=" · ".join(parts),
        data={k: v for k, v in event.items() if isinstance(v, str | int | float | bool)},
        collapse_key=str(event["access_point_id"]) if event.get("access_point_id") else None,
    )


class Notifier:
    """Pushes resident events that no live socket received. Subscribe ``on_event`` to the bus
    prefix ``user:``; ``start``/``stop`` bracket the worker."""

    def __init__(
        self,
        provider: PushProvider,
        presence: Presence,
        *,
        capacity: int = QUEUE_CAPACITY,
    ) -> None:
        self.provider = provider
        self.presence = presence
        self._queue: asyncio.Queue[tuple[str, dict[str, Any]]] = asyncio.Queue(capacity)
        self._worker: asyncio.Task[None] | None = None
        self.pushed = 0
        self.dropped = 0
        self.failed = 0

    async def on_event(self, channel: str, event: dict[str, Any]) -> None:
        user_id = channel.removeprefix("user:")
        try:
            self._queue.put_nowait((user_id, event))
        except asyncio.QueueFull:
            self.dropped += 1
            log.warning("push_dropped", user_id=user_id, event_id=event.get("id"))

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
        """Wait until every queued event has been considered (tests, shutdown)."""
        await self._queue.join()

    async def _work(self) -> None:
        while True:
            user_id, event = await self._queue.get()
            try:
                await self._consider(user_id, event)
            finally:
                self._queue.task_done()

    async def _consider(self, user_id: str, event: dict[str, Any]) -> None:
        try:
            if await self.presence(user_id) > 0:
                return
            await self.provider.send(push_for(user_id, event))
            self.pushed += 1
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a provider failure must not stop later pushes
            self.failed += 1
            log.warning(
                "push_failed",
                provider=self.provider.name,
                user_id=user_id,
                event_id=event.get("id"),
                error=repr(exc),
            )
