"""Mailbox: a bounded FIFO of envelopes, observable, cheap when empty."""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Generic, NamedTuple, TypeVar

from propdev.actors.errors import MailboxFull

T = TypeVar("T")


class MailboxStatistics(NamedTuple):
    depth: int
    capacity: int
    waiters: int
    """Senders waiting in `put` for room."""


class Mailbox(Generic[T]):
    """A bounded FIFO. `put_nowait` raises `MailboxFull`; `put` waits for room.

    The underlying deque exists only while there are items (an empty deque costs more
    than half a kilobyte, and most of a node's actors are idle), so call `release()`
    once the consumer has drained it.
    """

    __slots__ = ("_items", "_putters", "capacity")

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"mailbox capacity must be >= 1, got {capacity}")
        self.capacity = capacity
        self._items: deque[T] | None = None
        self._putters: deque[asyncio.Future[None]] | None = None

    def __len__(self) -> int:
        items = self._items
        return len(items) if items is not None else 0

    def __bool__(self) -> bool:
        return bool(self._items)

    def put_nowait(self, item: T) -> None:
        items = self._items
        if items is None:
            items = self._items = deque()
        elif len(items) >= self.capacity:
            raise MailboxFull(f"mailbox full ({self.capacity} messages)")
        items.append(item)

    async def put(self, item: T) -> None:
        """Append `item`, waiting while the mailbox is full."""
        while len(self) >= self.capacity:
            putters = self._putters
            if putters is None:
                putters = self._putters = deque()
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            putters.append(waiter)
            try:
                await waiter
            except BaseException:
                waiter.cancel()
                if not waiter.cancelled() or len(self) < self.capacity:
                    self._wake_putter()
                raise
            finally:
                if waiter in putters:
                    putters.remove(waiter)
        self.put_nowait(item)

    def push_front(self, item: T) -> None:
        """Put `item` first, ignoring the capacity (redelivery after a restart)."""
        items = self._items
        if items is None:
            items = self._items = deque()
        items.appendleft(item)

    def get_nowait(self) -> T:
        """Take the oldest item; raises IndexError when empty."""
        items = self._items
        if not items:
            raise IndexError("mailbox is empty")
        item = items.popleft()
        if self._putters:
            self._wake_putter()
        return item

    def drain(self) -> list[T]:
        """Take every item at once."""
        items = self._items
        self._items = None
        return list(items) if items else []

    def release(self) -> None:
        """Drop the storage of an empty mailbox."""
        if not self._items and not self._putters:
            self._items = None
            self._putters = None

    def fail_waiters(self, exc: BaseException) -> None:
        """Raise `exc` in every sender waiting for room."""
        putters = self._putters
        self._putters = None
        while putters:
            waiter = putters.popleft()
            if not waiter.done():
                waiter.set_exception(exc)

    def statistics(self) -> MailboxStatistics:
        putters = self._putters
        return MailboxStatistics(len(self), self.capacity, len(putters) if putters else 0)

    def _wake_putter(self) -> None:
        putters = self._putters
        while putters:
            waiter = putters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
