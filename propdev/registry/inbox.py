"""Messages between nodes: each node's inbox is a Redis Stream read through a consumer group.

``ask(node, target, message, timeout)`` adds the message to the node's inbox stream (queued on
the ``Pipeliner``: a burst is one round trip) and waits for the reply that comes back, with the
same correlation id, on the asker's reply stream. The owner acknowledges an inbox entry once
it has handled it and queued the reply, so an entry taken by a node that dies before handling
it stays pending and is handled again when that node id comes back (if the asker still waits).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from redis import exceptions as redis_errors
from redis.asyncio import Redis

from propdev.registry.errors import RemoteAskTimeout, WireError
from propdev.registry.pipeline import Pipeliner
from propdev.registry.wire import (
    decode_message,
    decode_reply,
    encode_message,
    encode_reply,
    pack,
    unpack,
)

log = structlog.get_logger()

GROUP = "owner"
INBOX_MAXLEN = 100_000
REPLIES_MAXLEN = 10_000
READ_COUNT = 256
BLOCK_MS = 1000
RECONNECT = 0.2

Serve = Callable[[str, object, float], Awaitable[object]]
"""(target, message, seconds left) -> reply; runs on the owner."""


class Inbox:
    def __init__(
        self, redis: Redis, pipeliner: Pipeliner, *, namespace: str, node_id: str, serve: Serve
    ) -> None:
        self._redis = redis
        self._pipeliner = pipeliner
        self._namespace = namespace
        self.node_id = node_id
        self._inbox = self.inbox_of(node_id)
        self._replies = f"{namespace}:replies:{node_id}"
        self._serve = serve
        self._waiting: dict[str, asyncio.Future[Any]] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._handling: set[asyncio.Task[None]] = set()
        self._accepting = True
        self.asked = 0
        self.served = 0

    def inbox_of(self, node_id: str) -> str:
        return f"{self._namespace}:inbox:{node_id}"

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._read_inbox(), name="inbox"),
            loop.create_task(self._read_replies(), name="replies"),
        ]

    async def stop_accepting(self) -> None:
        """Take no new inbox entries; wait for those being handled."""
        self._accepting = False
        if self._handling:
            await asyncio.wait(self._handling, timeout=10)

    async def close(self) -> None:
        self._accepting = False
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for future in self._waiting.values():
            if not future.done():
                future.set_exception(RemoteAskTimeout("node stopping"))

    # -- the asking side ------------------------------------------------------------------

    async def ask(self, node: str, target: str, message: object, timeout: float) -> object:  # noqa: ASYNC109 - the ask's own deadline travels with it
        """Ask ``target`` on ``node``; its reply, ``RemoteAskTimeout`` after ``timeout``."""
        correlation = uuid.uuid4().hex
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiting[correlation] = future
        self.asked += 1
        envelope = {
            "c": correlation,
            "r": self.node_id,
            "t": target,
            "m": encode_message(message),
            "d": time.time() + timeout,
        }
        try:
            async with asyncio.timeout(timeout):
                await self._pipeliner.send(
                    "XADD",
                    self.inbox_of(node),
                    "MAXLEN",
                    "~",
                    INBOX_MAXLEN,
                    "*",
                    "p",
                    pack(envelope),
                )
                reply = await future
        except TimeoutError:
            raise RemoteAskTimeout(
                f"no reply from {target} on {node} within {timeout:g}s"
            ) from None
        finally:
            self._waiting.pop(correlation, None)
        return decode_reply(reply)

    async def _read_replies(self) -> None:
        last = "$"
        while True:
            try:
                found: Any = await self._redis.xread(
                    {self._replies: last}, count=READ_COUNT, block=BLOCK_MS
                )
            except asyncio.CancelledError:
                raise
            except (redis_errors.RedisError, OSError) as exc:
                log.warning("replies_unreachable", error=str(exc))
                await asyncio.sleep(RECONNECT)
                continue
            for _stream, entries in found or []:
                for entry_id, fields in entries:
                    last = entry_id
                    try:
                        body = unpack(fields[b"p"])
                    except (WireError, KeyError):
                        continue
                    future = self._waiting.get(body.get("c", ""))
                    if future is not None and not future.done():
                        future.set_result(body["v"])

    # -- the owning side ------------------------------------------------------------------

    async def _ensure_group(self) -> None:
        try:
            await self._redis.xgroup_create(self._inbox, GROUP, id="0", mkstream=True)
        except redis_errors.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def _read_inbox(self) -> None:
        pending_first = True
        while True:
            if not self._accepting:
                await asyncio.sleep(BLOCK_MS / 1000)
                continue
            try:
                await self._ensure_group()
                found: Any = await self._redis.xreadgroup(
                    GROUP,
                    self.node_id,
                    {self._inbox: "0" if pending_first else ">"},
                    count=READ_COUNT,
                    block=None if pending_first else BLOCK_MS,
                )
            except asyncio.CancelledError:
                raise
            except (redis_errors.RedisError, OSError) as exc:
                log.warning("inbox_unreachable", error=str(exc))
                await asyncio.sleep(RECONNECT)
                continue
            entries = [e for _stream, batch in found or [] for e in batch]
            if pending_first and not entries:
                pending_first = False
                continue
            for entry_id, fields in entries:
                task = asyncio.get_running_loop().create_task(self._handle(entry_id, fields))
                self._handling.add(task)
                task.add_done_callback(self._handling.discard)
            if pending_first:
                # Pending entries were handed out again; from now on, new ones only.
                pending_first = False

    async def _handle(self, entry_id: bytes, fields: dict[bytes, bytes]) -> None:
        try:
            envelope = unpack(fields[b"p"])
            message = decode_message(envelope["m"])
        except (WireError, KeyError) as exc:
            log.warning("inbox_entry_dropped", entry=entry_id, error=str(exc))
            await self._ack(entry_id)
            return
        left = float(envelope["d"]) - time.time()
        if left <= 0:
            await self._ack(entry_id)  # the asker gave up already
            return
        try:
            reply = await self._serve(envelope["t"], message, left)
        except Exception as exc:  # the asker gets the failure, as with a local ask
            reply = exc
        self.served += 1
        body = pack({"c": envelope["c"], "v": encode_reply(reply)})
        with contextlib.suppress(Exception):
            self._pipeliner.send_nowait(
                "XADD",
                f"{self._namespace}:replies:{envelope['r']}",
                "MAXLEN",
                "~",
                REPLIES_MAXLEN,
                "*",
                "p",
                body,
            )
        await self._ack(entry_id)

    async def _ack(self, entry_id: bytes) -> None:
        with contextlib.suppress(Exception):
            self._pipeliner.send_nowait("XACK", self._inbox, GROUP, entry_id)
