"""The event bus: best-effort live fan-out between the parts of a node (and, later, nodes).

Durability comes from the store: a subscriber that missed a message reads it from there.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import structlog

log = structlog.get_logger()

Handler = Callable[[str, dict[str, Any]], Awaitable[None]]


class Bus(Protocol):
    async def publish(self, channel: str, message: dict[str, Any]) -> None: ...

    def subscribe(self, prefix: str, handler: Handler) -> None: ...

    async def ping(self) -> bool: ...

    async def close(self) -> None: ...


class InProcessBus:
    """Delivers to handlers in this process whose prefix matches the channel."""

    def __init__(self) -> None:
        self._handlers: list[tuple[str, Handler]] = []
        self.published = 0

    async def publish(self, channel: str, message: dict[str, Any]) -> None:
        self.published += 1
        for prefix, handler in self._handlers:
            if channel.startswith(prefix):
                try:
                    await handler(channel, message)
                except Exception:  # one failing subscriber must not stop the others
                    log.exception("bus_handler_failed", channel=channel)

    def subscribe(self, prefix: str, handler: Handler) -> None:
        self._handlers.append((prefix, handler))

    async def ping(self) -> bool:
        return True

    async def close(self) -> None:
        self._handlers.clear()
