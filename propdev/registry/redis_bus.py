"""RedisBus: the ``Bus`` between nodes, over Redis pub/sub with msgpack on the wire.

Handlers in this process get a message at once (no Redis round trip); other nodes get a
broadcast channel through one pattern subscription (``<ns>:bus:*``), and a directed channel
(``user:<id>``, sent as ``<ns>:to:user:<id>``) only if they ``listen`` to it: a node
subscribes to a resident's channel while it holds one of their WebSockets, and ``audience``
asks Redis (PUBSUB NUMSUB) how many nodes do. Publishing queues the PUBLISH on the shared
``Pipeliner``, so a burst of events costs one round trip. Pub/sub is best effort: a node that was
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
LISTEN_TIMEOUT = 2.0  # for Redis to confirm a new subscription
DIRECTED = ("user:",)


class RedisBus:
    """Pub/sub fan-out to every node; local handlers are called directly."""

    def __init__(
        self,
        redis: Redis,
        pipeliner: Pipeliner,
        *,
        namespace: str,
        node_id: str,
        directed: tuple[str, ...] = DIRECTED,
    ) -> None:
        self._redis = redis
        self._pipeliner = pipeliner
        self._node_id = node_id
        self._channel_prefix = f"{namespace}:bus:"
        self._directed_prefix = f"{namespace}:to:"
        self._directed = directed
        self._handlers: list[tuple[str, Handler, bool]] = []
        self._listening: dict[str, int] = {}  # directed channel -> local interest count
        self._confirm: dict[str, asyncio.Future[None]] = {}  # redis channel -> confirmed
        self._pubsub: Any = None  # the live subscription's PubSub, while connected
        self._task: asyncio.Task[None] | None = None
        self.connected = False
        self.last_heard = time.monotonic()
        self.published = 0
        self.received = 0
        self.lag_sum = 0.0  # seconds from publish on another node to delivery here
        self._chores: set[asyncio.Task[None]] = set()

    # -- Bus --------------------------------------------------------------------------------

    async def publish(self, channel: str, message: dict[str, Any]) -> None:
        self.published += 1
        await self._dispatch(channel, message, local=True)
        self._pipeliner.send_nowait(
            "PUBLISH",
            self._redis_channel(channel),
            pack({"o": self._node_id, "t": time.time(), "m": message}),
        )

    def subscribe(self, prefix: str, handler: Handler, *, local_only: bool = False) -> None:
        self._handlers.append((prefix, handler, local_only))

    async def listen(self, channel: str) -> None:
        count = self._listening.get(channel, 0)
        self._listening[channel] = count + 1
        if count or not self._is_directed(channel):
            return
        pubsub = self._pubsub
        if pubsub is None:
            return  # disconnected: the listener subscribes to every channel when it reconnects
        name = self._redis_channel(channel)
        confirmed = self._confirm.get(name)
        if confirmed is None:
            confirmed = self._confirm[name] = asyncio.get_running_loop().create_future()
        try:
            async with asyncio.timeout(LISTEN_TIMEOUT):
                await pubsub.subscribe(name)
                await asyncio.shield(confirmed)
        except (redis_errors.RedisError, OSError, TimeoutError) as exc:
            # best effort, like all pub/sub: the listener retries on reconnect and a client
            # that reconnects with ?after= reads what it missed from the store
            log.warning("bus_listen_failed", channel=channel, error=repr(exc))

    def unlisten(self, channel: str) -> None:
        count = self._listening.get(channel, 0) - 1
        if count > 0:
            self._listening[channel] = count
            return
        self._listening.pop(channel, None)
        pubsub = self._pubsub
        if pubsub is not None and self._is_directed(channel):
            task = asyncio.get_running_loop().create_task(self._unsubscribe(pubsub, channel))
            self._chores.add(task)
            task.add_done_callback(self._chores.discard)

    async def audience(self, channel: str) -> int:
        name = self._redis_channel(channel)
        try:
            async with asyncio.timeout(1.0):
                counts = await self._redis.pubsub_numsub(name)
        except (redis_errors.RedisError, OSError, TimeoutError):
            return 0
        subscribers = sum(int(n) for _, n in counts)
        if self._listening.get(channel) and self._pubsub is not None:
            subscribers -= 1  # our own subscription
        return max(0, subscribers)

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
        self._listening.clear()

    # -- life -------------------------------------------------------------------------------

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._listen(), name="redis-bus")

    def deaf_for(self) -> float:
        """Seconds since this node last heard from the bus (0 while it hears it)."""
        return max(0.0, time.monotonic() - self.last_heard - 2 * PING_EVERY)

    def _redis_channel(self, channel: str) -> str:
        if channel.startswith(self._directed):
            return self._directed_prefix + channel
        return self._channel_prefix + channel

    async def _unsubscribe(self, pubsub: Any, channel: str) -> None:
        if channel in self._listening:
            return  # listened to again meanwhile
        with contextlib.suppress(redis_errors.RedisError, OSError):
            await pubsub.unsubscribe(self._redis_channel(channel))

    async def _dispatch(self, channel: str, message: dict[str, Any], *, local: bool) -> None:
        for prefix, handler, local_only in self._handlers:
            if channel.startswith(prefix) and (local or not local_only):
                try:
                    await handler(channel, message)
                except Exception:  # one failing subscriber must not stop the others
                    log.exception("bus_handler_failed", channel=channel)

    async def _listen(self) -> None:
        delay = RECONNECT_MIN
        me = asyncio.current_task()
        while True:
            pubsub = self._redis.pubsub()
            try:
                await pubsub.psubscribe(self._channel_prefix + "*")
                directed = [self._redis_channel(c) for c in self._listening if self._is_directed(c)]
                if directed:
                    await pubsub.subscribe(*directed)
                self._pubsub = pubsub
                self.connected = True
                self.last_heard = time.monotonic()
                delay = RECONNECT_MIN
                log.info("bus_subscribed", pattern=self._channel_prefix + "*")
                next_ping = time.monotonic() + PING_EVERY
                while True:
                    item = await pubsub.get_message(timeout=PING_EVERY)
                    if me is not None and me.cancelling():
                        # redis-py's read with a timeout can take our cancellation for its
                        # timeout and return None: ``close`` would then wait forever.
                        raise asyncio.CancelledError
                    now = time.monotonic()
                    if item is not None:
                        self.last_heard = now
                        kind = item.get("type")
                        if kind in ("pmessage", "message"):
                            await self._received(item)
                        elif kind == "subscribe":
                            self._confirmed(item["channel"])
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
                self._pubsub = None
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
        if channel.startswith(self._directed_prefix):
            channel = channel.removeprefix(self._directed_prefix)
        else:
            channel = channel.removeprefix(self._channel_prefix)
        await self._dispatch(channel, envelope["m"], local=False)

    def _is_directed(self, channel: str) -> bool:
        return channel.startswith(self._directed)

    def _confirmed(self, name: str | bytes) -> None:
        if isinstance(name, bytes):
            name = name.decode()
        confirmed = self._confirm.pop(name, None)
        if confirmed is not None and not confirmed.done():
            confirmed.set_result(None)
