"""Asynchronous confirmations: an open waits for the vendor's ``command_result`` callback.

A vendor that answers "accepted, ticket T" and confirms later by callback is driven through
``Confirmations``: the adapter waits on ``wait(T)`` (bounded by the gateway's timeout), the
callback route calls ``resolve(T, ...)``. Results are kept (the newest ``keep`` of them): one
that arrives before anyone waits (the callback can overtake the 202) is there for the waiter,
and a repeated open with the same idempotency key (the same ticket) gets the same result.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections import OrderedDict
from dataclasses import dataclass
from typing import Protocol, runtime_checkable


@dataclass(frozen=True, slots=True)
class Confirmation:
    """The vendor's outcome of one ticket; ``error`` is the vendor's code when not ``ok``."""

    ticket: str
    ok: bool
    error: str | None = None
    at: dt.datetime | None = None


@runtime_checkable
class ConfirmsByCallback(Protocol):
    """An adapter whose opens complete when the vendor's ``command_result`` arrives."""

    def confirm(self, confirmation: Confirmation) -> bool:
        """Hand over a result; True when an open was waiting for it."""
        ...


class Confirmations:
    """Tickets waited for, and results that came early."""

    def __init__(self, *, keep: int = 10_000) -> None:
        self._waiters: dict[str, asyncio.Future[Confirmation]] = {}
        self._results: OrderedDict[str, Confirmation] = OrderedDict()
        self._keep = keep

    def resolve(self, confirmation: Confirmation) -> bool:
        self._results[confirmation.ticket] = confirmation
        while len(self._results) > self._keep:
            self._results.popitem(last=False)
        waiter = self._waiters.pop(confirmation.ticket, None)
        if waiter is not None and not waiter.done():
            waiter.set_result(confirmation)
            return True
        return False

    async def wait(self, ticket: str) -> Confirmation:
        """The result of ``ticket``; the caller bounds the wait (cancellation is clean)."""
        known = self._results.get(ticket)
        if known is not None:
            return known
        waiter = self._waiters.get(ticket)
        if waiter is None or waiter.done():
            waiter = asyncio.get_running_loop().create_future()
            self._waiters[ticket] = waiter
        try:
            return await asyncio.shield(waiter)
        finally:
            if self._waiters.get(ticket) is waiter and not waiter.done():
                del self._waiters[ticket]

    @property
    def waiting(self) -> int:
        return len(self._waiters)
