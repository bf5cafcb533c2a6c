"""Token buckets per client: ``rate`` per second with bursts of twice that."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable


class RateLimiter:
    """In-process limiter; the cluster issue shares it through Redis behind the same call."""

    __slots__ = ("_buckets", "burst", "clock", "max_clients", "rate")

    def __init__(
        self,
        rate: float,
        *,
        burst: float | None = None,
        max_clients: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rate = rate
        self.burst = burst if burst is not None else 2 * rate
        self.max_clients = max_clients
        self.clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    @property
    def enabled(self) -> bool:
        return self.rate > 0

    def take(self, client: str) -> float:
        """Take one token for ``client``; return 0 if allowed, else seconds until one is free."""
        now = self.clock()
        tokens, last = self._buckets.pop(client, (self.burst, now))
        tokens = min(self.burst, tokens + (now - last) * self.rate)
        if tokens >= 1:
            self._buckets[client] = (tokens - 1, now)
            wait = 0.0
        else:
            self._buckets[client] = (tokens, now)
            wait = (1 - tokens) / self.rate
        if len(self._buckets) > self.max_clients:
            self._buckets.popitem(last=False)  # forget the least recently seen client
        return wait
