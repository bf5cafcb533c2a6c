"""The utilities system behind the same guards as a partner: circuit breaker, bulkhead, timeout.

The machinery is the partners' ``CallGuard`` (``propdev.partners``), as every partner gateway's:
the circuit, then the bulkhead, then the call under a timeout. Refusals
(``PartnerRefusedError``: the system answered "no") count as successes.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import Any

import structlog

from propdev.housing.client import UtilitiesClient
from propdev.partners import CallGuard, RedisCircuits, StateListener

UPSTREAM = "utilities"

CallObserver = Callable[[str, str], contextlib.AbstractContextManager[str | None]]

log = structlog.get_logger()


class UtilitiesGateway:
    """A ``UtilitiesClient`` guarded by a timeout, a circuit breaker and a bulkhead."""

    def __init__(
        self,
        client: UtilitiesClient,
        *,
        timeout: float,
        breaker_failures: int,
        breaker_reset: float,
        max_in_flight: int = 32,
        clock: Callable[[], float] = time.monotonic,
        on_state_change: StateListener | None = None,
        observe: CallObserver | None = None,
    ) -> None:
        self.client = client
        self._observe = observe
        self._guard = CallGuard(
            UPSTREAM,
            timeout=timeout,
            breaker_failures=breaker_failures,
            breaker_reset=breaker_reset,
            max_in_flight=max_in_flight,
            clock=clock,
            on_state_change=on_state_change,
        )

    @property
    def state(self) -> str:
        return self._guard.state

    def snapshot(self) -> dict[str, Any]:
        return self._guard.snapshot()

    def share(self, circuits: RedisCircuits) -> None:
        """Keep the circuit in the cluster's ``circuits`` (``CallGuard.share``)."""
        self._guard.share(circuits)

    async def bills(self, account_id: str, period: str | None) -> list[dict[str, Any]]:
        with self._observed("bills"):
            return await self._guard.call(lambda: self.client.bills(account_id, period))

    async def submit_reading(
        self, account_id: str, reading: dict[str, Any], *, key: str
    ) -> dict[str, Any]:
        with self._observed("submit_reading"):
            return await self._guard.call(
                lambda: self.client.submit_reading(account_id, reading, key=key)
            )

    async def close(self) -> None:
        await self.client.close()

    def _observed(self, operation: str) -> contextlib.AbstractContextManager[str | None]:
        if self._observe is None:
            return contextlib.nullcontext()
        return self._observe(UPSTREAM, operation)
