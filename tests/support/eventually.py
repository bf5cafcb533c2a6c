"""Waiting on an event by polling it, with a deadline: never a sleep standing for the event."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any


async def eventually(
    check: Callable[[], Awaitable[Any]], *, within: float, what: str, every: float = 0.1
) -> Any:
    """Poll ``check`` until it returns something truthy, and return that; fail after ``within``
    seconds (a bound for hangs, not a measurement)."""
    deadline = time.monotonic() + within
    last: Any = None
    while time.monotonic() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(every)
    raise AssertionError(f"not within {within}s: {what} (last: {last!r})")
