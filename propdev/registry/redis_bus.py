"""RedisBus: the ``Bus`` between nodes, over Redis pub/sub with msgpack on the wire.

Handlers in this process get a message at once (no Redis round trip); other nodes get it
through one pattern subscription. Publishing queues the PUBLISH on the shared ``Pipeliner``,
so a burst of events costs one round trip. Pub/sub is best effort: a node that was
disconnected reads what it missed from the store (``?after=ID``).

``last_heard`` is the monotonic time of the last message or pong from the subscription:
``deaf_for()`` tells how long this node may have missed messages (revocations).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import structlog
from redis import exceptions as redis_errors
from redis.asyncio import Redis

from propdev.registry.bus import Handler
from propdev.registry.errors import WireError
from propdev.registry.pipeline import Pipeliner
from propdev.registry.wire import pack, unpack

log = structlog.get_logger()

PING_EVERY = 0.5
RECONNECT_MIN = 0.1
RECONNECT_MAX = 2.0


class RedisBus:
    """Pub/sub fan-out to every node; local handlers are called directly."""

    def __init__(self, redis: Redis, pipeliner: Pipeliner, *, namespace: str, node_id: str) -> None:
        self._redis = redis
        self._pipeliner = pipeliner
        self._node_id = node_id
        self._channel_prefix = f"{namespace}:bus:"
        self._handlers: list[tuple[str, Handler]] = []
        self._task: asyncio.Task[None] | None = None
        self.connected = False
        self.last_heard = time.monotonic()
        self.published = 0
        self.received = 0
        self.lag_sum = 0.0  # seconds from publish on another node to delivery here

    # -- Bus --------------------------------------------------------------------------------

    async def publish(self, channel: str, message: dict[str, Any]) -> None:
        self.published += 1
        await self._dispatch(channel, message)
        self._pipeliner.send_nowait(
            "PUBLISH",
            self._channel_prefix + channel,
            pack({"o": self._node_id, "t": time.time(), "m": message}),
        )

    def subscribe(self, prefix: str, handler: Handler) -> None:
        self._handlers.append((prefix, handler))

    async def ping(self) -> bool:
        try:
            async with asyncio.timeout(1.0):
                return bool(await self._redis.ping())
        except (redis_errors.RedisError, OSError, TimeoutError):
            return False

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._handlers.clear()

    # -- life -------------------------------------------------------------------------------

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._listen(), name="redis-bus")

    def deaf_for(self) -> float:
        """Seconds since this node last heard from the bus (0 while it hears it)."""
        return max(0.0, time.monotonic() - self.last_heard - 2 * PING_EVERY)

    async def _dispatch(self, channel: str, message: dict[str, Any]) -> None:
        for prefix, handler in self._handlers:
            if channel.startswith(prefix):
                try:
                    await handler(channel, message)
                except Exception:  # one failing subscriber must not stop the others
                    log.exception("bus_handler_failed", channel=channel)

    async def _listen(self) -> None:
        delay = RECONNECT_MIN
        while True:
            pubsub = self._redis.pubsub()
            try:
                await pubsub.psubscribe(self._channel_prefix + "*")
                self.connected = True
                self.last_heard = time.monotonic()
                delay = RECONNECT_MIN
                log.info("bus_subscribed", pattern=self._channel_prefix + "*")
                next_ping = time.monotonic() + PING_EVERY
                while True:
                    item = await pubsub.get_message(timeout=PING_EVERY)
                    now = time.monotonic()
                    if item is not None:
                        self.last_heard = now
                        if item.get("type") == "pmessage":
                            await self._received(item)
                    if now >= next_ping:
                        await pubsub.ping()
                        next_ping = now + PING_EVERY
            except asyncio.CancelledError:
                raise
            except (redis_errors.RedisError, OSError) as exc:
                if self.connected:
                    log.warning("bus_disconnected", error=str(exc))
                self.connected = False
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]
            await asyncio.sleep(delay)
            delay = min(delay * 2, RECONNECT_MAX)

    async def _received(self, item: dict[str, Any]) -> None:
        channel = item["channel"]
        if isinstance(channel, bytes):
            channel = channel.decode()
        try:
            envelope = unpack(item["data"])
        except WireError:
            log.warning("bus_message_dropped", channel=channel)
            return
        if envelope.get("o") == self._node_id:
            return  # delivered locally when published
        self.received += 1
        sent = envelope.get("t")
        if isinstance(sent, float):  # wall clocks of two nodes: lag, not a precise latency
            lag = max(0.0, time.time() - sent)
            self.lag_sum += lag
        await self._dispatch(channel.removeprefix(self._channel_prefix), envelope["m"])
