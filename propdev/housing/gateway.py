"""The utilities system behind the same guards as a partner: circuit breaker, bulkhead, timeout.

The machinery is the partners' (``propdev.partners.Breaker``, the partner errors); the order of
checks is ``PartnerGateway``'s: the circuit (open → ``CircuitOpenError`` at once), the bulkhead
(full → ``BulkheadFullError``, nothing queues), then the call under ``asyncio.timeout``.
Refusals (``PartnerRefusedError``: the system answered "no") count as successes.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import structlog

from propdev.housing.client import UtilitiesClient
from propdev.partners import (
    Breaker,
    BulkheadFullError,
    PartnerError,
    PartnerTimeoutError,
)

UPSTREAM = "utilities"

T = TypeVar("T")
StateListener = Callable[[str, str, str], None]
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
        if timeout <= 0 or max_in_flight < 1:
            raise ValueError("timeout and max_in_flight must be > 0")
        self.client = client
        self._timeout = timeout
        self._max_in_flight = max_in_flight
        self._slots = asyncio.Semaphore(max_in_flight)
        self._in_flight = 0
        self._on_state_change = on_state_change
        self._observe = observe
        self._breaker = Breaker(
            UPSTREAM,
            failures=breaker_failures,
            reset=breaker_reset,
            clock=clock,
            on_change=self._state_changed,
            trial_retry_after=timeout,
        )

    @property
    def state(self) -> str:
        return self._breaker.state

    def snapshot(self) -> dict[str, Any]:
        return {
            "partner_id": UPSTREAM,
            "state": self.state,
            "failures": self._breaker.failures,
            "in_flight": self._in_flight,
            "max_in_flight": self._max_in_flight,
            "retry_after": self._breaker.retry_after(),
        }

    async def bills(self, account_id: str, period: str | None) -> list[dict[str, Any]]:
        with self._observed("bills"):
            return await self._guarded(lambda: self.client.bills(account_id, period))

    async def submit_reading(
        self, account_id: str, reading: dict[str, Any], *, key: str
    ) -> dict[str, Any]:
        with self._observed("submit_reading"):
            return await self._guarded(
                lambda: self.client.submit_reading(account_id, reading, key=key)
            )

    async def close(self) -> None:
        await self.client.close()

    def _observed(self, operation: str) -> contextlib.AbstractContextManager[str | None]:
        if self._observe is None:
            return contextlib.nullcontext()
        return self._observe(UPSTREAM, operation)

    async def _guarded(self, call: Callable[[], Awaitable[T]]) -> T:
        ticket = self._breaker.admit()
        if self._slots.locked():
            self._breaker.release(ticket)
            raise BulkheadFullError(UPSTREAM, self._max_in_flight)
        async with self._slots:
            self._in_flight += 1
            try:
                result = await self._within_timeout(call)
            except Exception as exc:
                self._breaker.record(ticket, exc)
                raise
            except BaseException:
                self._breaker.release(ticket)
                raise
            finally:
                self._in_flight -= 1
        self._breaker.record(ticket, None)
        return result

    async def _within_timeout(self, call: Callable[[], Awaitable[T]]) -> T:
        try:
            async with asyncio.timeout(self._timeout):
                return await call()
        except TimeoutError as exc:
            if isinstance(exc, PartnerError):
                raise
            raise PartnerTimeoutError(f"{UPSTREAM}: no answer within {self._timeout}s") from exc

    def _state_changed(self, old: str, new: str) -> None:
        log.warning("partner_breaker_state", partner=UPSTREAM, old=old, new=new)
        if self._on_state_change is not None:
            try:
                self._on_state_change(UPSTREAM, old, new)
            except Exception:
                log.exception("partner_breaker_listener_failed", partner=UPSTREAM)
