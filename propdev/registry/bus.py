"""The event bus: best-effort live fan-out between the parts of a node and between nodes.

Durability comes from the store: a subscriber that missed a message reads it from there.

Two kinds of channel. Broadcast channels (``revoked:...``) reach every node. Directed channels
(``user:<id>``, one per resident) reach only the nodes that declared an interest with
``listen`` -- those holding a WebSocket of that resident -- so a node does not receive every
resident's events of the whole cluster. ``audience`` tells how many other nodes listen.
Handlers subscribed with ``local_only`` hear only what this node publishes.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import structlog

log = structlog.get_logger()

Handler = Callable[[str, dict[str, Any]], Awaitable[None]]


class Bus(Protocol):
    async def publish(self, channel: str, message: dict[str, Any]) -> None: ...

    def subscribe(self, prefix: str, handler: Handler, *, local_only: bool = False) -> None: ...

    async def listen(self, channel: str) -> None:
        """Receive ``channel`` from other nodes too (counted: one ``unlisten`` per ``listen``);
        returns once the subscription is in place, so nothing published after is missed."""

    def unlisten(self, channel: str) -> None: ...

    async def audience(self, channel: str) -> int:
        """How many other nodes listen to ``channel`` now."""

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

    def subscribe(self, prefix: str, handler: Handler, *, local_only: bool = False) -> None:
        self._handlers.append((prefix, handler))

    async def listen(self, channel: str) -> None:
        return None  # one process: every channel is heard

    def unlisten(self, channel: str) -> None:
        return None

    async def audience(self, channel: str) -> int:
        return 0  # no other nodes

    async def ping(self) -> bool:
        return True

    async def close(self) -> None:
        self._handlers.clear()
