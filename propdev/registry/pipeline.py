"""Batches Redis commands on the hot path: one pipeline round trip for everything queued.

Redis from Python is client-bound (~150 µs per awaited command, see performance.md §3e);
queuing commands and sending them in one non-transactional pipeline per loop turn costs one
round trip for a burst. ``send`` waits for its own result (commands that must arrive);
``send_nowait`` is best effort (live fan-out) and is dropped when the queue is full or Redis
is down.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from typing import Any

import structlog
from redis import exceptions as redis_errors
from redis.asyncio import Redis

from propdev.registry.errors import BusUnavailableError

log = structlog.get_logger()

MAX_BATCH = 512
MAX_QUEUED = 20_000

_Item = tuple[tuple[Any, ...], "asyncio.Future[Any] | None"]


class Pipeliner:
    """Sends queued commands in batches, from one writer task."""

    def __init__(self, redis: Redis, *, max_batch: int = MAX_BATCH) -> None:
        self._redis = redis
        self._max_batch = max_batch
        self._queue: deque[_Item] = deque()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.dropped = 0
        self.batches = 0
        self.sent = 0

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="redis-writer")

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        while self._queue:
            _, future = self._queue.popleft()
            if future is not None and not future.done():
                future.set_exception(BusUnavailableError("closed"))

    def send_nowait(self, *args: Any) -> None:
        """Queue a best-effort command; dropped if too much is already queued."""
        if len(self._queue) >= MAX_QUEUED:
            self.dropped += 1
            return
        self._queue.append((args, None))
        self._wake.set()

    async def send(self, *args: Any) -> Any:
        """Queue a command and wait for its result; ``BusUnavailableError`` if Redis is down."""
        if self._task is None:
            raise BusUnavailableError("the Redis writer is not running")
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._queue.append((args, future))
        self._wake.set()
        return await future

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._queue:
                batch = [
                    self._queue.popleft() for _ in range(min(len(self._queue), self._max_batch))
                ]
                await self._flush(batch)

    async def _flush(self, batch: list[_Item]) -> None:
        try:
            pipe = self._redis.pipeline(transaction=False)
            for args, _ in batch:
                pipe.execute_command(*args)
            results = await pipe.execute(raise_on_error=False)
        except (redis_errors.RedisError, OSError) as exc:
            # ConnectionError, TimeoutError, and what a failover adds (MasterNotFoundError, a
            # READONLY reply from a demoted master): the batch fails, the writer goes on
            lost = 0
            for _, future in batch:
                if future is None:
                    lost += 1
                elif not future.done():
                    future.set_exception(BusUnavailableError(str(exc)))
            self.dropped += lost
            log.warning("redis_batch_failed", commands=len(batch), dropped=lost, error=str(exc))
            return
        self.batches += 1
        self.sent += len(batch)
        for (_, future), result in zip(batch, results, strict=True):
            if future is None or future.done():
                continue
            if isinstance(result, Exception):
                future.set_exception(result)
            else:
                future.set_result(result)
