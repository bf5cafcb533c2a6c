"""``CallGuard``: a timeout, a circuit breaker and a bulkhead around the calls to one upstream.

Every partner's gateway and the housing-and-utilities (ЖКХ) gateway guard their calls with one.
Order of checks on each call: the circuit (open → ``CircuitOpenError`` at once), the bulkhead
(full → ``BulkheadFullError``, nothing queues), then the call under ``asyncio.timeout``
(``PartnerTimeoutError``). Refusals are answers and count as successes; timeouts,
unavailability and unexpected errors count as failures. Cancelling the caller counts nothing.

The circuit is this node's (``Breaker``) unless ``share`` gives the guard the cluster's
``RedisCircuits`` (``propdev.partners.circuits``): then it opens once for the cluster, and the
local breaker decides only while Redis cannot be reached.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import structlog

from propdev.partners.breaker import Breaker, Ticket
from propdev.partners.circuits import CLOSED, OPEN, CircuitSettings, RedisCircuits
from propdev.partners.errors import (
    BulkheadFullError,
    CircuitOpenError,
    PartnerError,
    PartnerRefusedError,
    PartnerTimeoutError,
)

LATENCY_WINDOW = 256
"""Calls whose latency ``latency()`` summarises (a bounded ring, read at snapshot time)."""

T = TypeVar("T")
StateListener = Callable[[str, str, str], None]
"""``on_state_change(upstream, old_state, new_state)``."""

log = structlog.get_logger()


class CallGuard:
    """Guards the calls to the upstream ``name``."""

    def __init__(
        self,
        name: str,
        *,
        timeout: float,
        breaker_failures: int,
        breaker_reset: float,
        max_in_flight: int,
        clock: Callable[[], float] = time.monotonic,
        on_state_change: StateListener | None = None,
    ) -> None:
        if timeout <= 0 or breaker_failures < 1 or breaker_reset <= 0 or max_in_flight < 1:
            raise ValueError("timeout, breaker_failures, breaker_reset, max_in_flight must be > 0")
        self.name = name
        self.timeout = timeout
        self.max_in_flight = max_in_flight
        self.in_flight = 0
        self.on_state_change = on_state_change
        self.breaker_failures = breaker_failures
        self.breaker_reset = breaker_reset
        self._circuits: RedisCircuits | None = None
        self._slots = asyncio.Semaphore(max_in_flight)
        self._latencies: deque[float] = deque(maxlen=LATENCY_WINDOW)  # seconds, newest last
        self._breaker = Breaker(
            name,
            failures=breaker_failures,
            reset=breaker_reset,
            clock=clock,
            on_change=self._state_changed,
            trial_retry_after=timeout,
        )

    def share(self, circuits: RedisCircuits) -> None:
        """Keep the circuit in the cluster's ``circuits`` from now on (the local breaker is the
        fallback while they cannot be reached)."""
        self._circuits = circuits
        circuits.track(self.name, self._circuit_settings(), self._state_changed)

    def _circuit_settings(self) -> CircuitSettings:
        return CircuitSettings(
            self.breaker_failures,
            self.breaker_reset,
            trial_ttl=self.timeout + 1.0,  # a trial that never reports frees the lock
            window=max(600.0, 2 * self.breaker_reset),
        )

    @property
    def _shared(self) -> RedisCircuits | None:
        circuits = self._circuits
        return circuits if circuits is not None and circuits.healthy else None

    @property
    def state(self) -> str:
        """The circuit's state: ``"closed"``, ``"open"`` or ``"half-open"``."""
        shared = self._shared
        return self._breaker.state if shared is None else shared.state(self.name)

    @property
    def failures(self) -> int:
        """Failures counted so far (the cluster's, when shared)."""
        shared = self._shared
        return self._breaker.failures if shared is None else shared.view(self.name).failures

    def snapshot(self) -> dict[str, Any]:
        """For ``/admin/api/v1/breakers`` and metrics."""
        shared = self._shared
        if shared is None:
            retry_after = self._breaker.retry_after()
        else:
            retry_after = shared.retry_after(self.name) if self.state == OPEN else None
        return {
            "partner_id": self.name,
            "state": self.state,
            "failures": self.failures,
            "in_flight": self.in_flight,
            "max_in_flight": self.max_in_flight,
            "retry_after": retry_after,
        }

    def latency(self) -> dict[str, Any]:
        """p50/p95 in milliseconds over the last ``LATENCY_WINDOW`` calls that were let through
        (answers, refusals, errors and timeouts alike; None before the first)."""
        window = list(self._latencies)
        if not window:
            return {"samples": 0, "p50_ms": None, "p95_ms": None}
        if len(window) == 1:
            p50 = p95 = window[0]
        else:
            cuts = statistics.quantiles(window, n=20, method="inclusive")  # 5 % steps
            p50, p95 = cuts[9], cuts[18]
        return {
            "samples": len(window),
            "p50_ms": round(p50 * 1000, 2),
            "p95_ms": round(p95 * 1000, 2),
        }

    async def call(self, call: Callable[[], Awaitable[T]]) -> T:
        ticket = await self._admit()
        if self._slots.locked():
            self._breaker.release(ticket)
            raise BulkheadFullError(self.name, self.max_in_flight)
        async with self._slots:  # a free slot is taken at once: the bulkhead never queues
            self.in_flight += 1
            started = time.perf_counter()
            try:
                result = await self._within_timeout(call)
            except Exception as exc:
                self._latencies.append(time.perf_counter() - started)
                await self._record(ticket, exc)
                raise
            except BaseException:
                self._breaker.release(ticket)  # cancelled: no outcome to count
                raise
            finally:
                self.in_flight -= 1
            self._latencies.append(time.perf_counter() - started)
        await self._record(ticket, None)
        return result

    async def _admit(self) -> Ticket:
        """The local breaker's admission, or the cluster's circuit's: read from this node's view
        (no Redis call) unless the call would be the trial of a half-open circuit."""
        shared = self._shared
        if shared is None:
            return self._breaker.admit()
        shared.settle(self.name)
        state = shared.state(self.name)
        if state == CLOSED:
            return Ticket.CLOSED
        if state == OPEN:
            raise CircuitOpenError(self.name, shared.retry_after(self.name))
        try:
            won = await shared.take_trial(self.name)
        except Exception as exc:  # redis unreachable: this node's breaker decides
            shared.unavailable(self.name, exc)
            return self._breaker.admit()
        if won:
            return Ticket.TRIAL
        if shared.state(self.name) == CLOSED:  # another node's trial has just closed it
            return Ticket.CLOSED
        raise CircuitOpenError(self.name, max(shared.retry_after(self.name), self.timeout))

    async def _record(self, ticket: Ticket, outcome: Exception | None) -> None:
        """Count an admitted call's outcome, in the cluster's circuit when shared (a success
        costs a Redis call only when this node knows of failures to end, or was the trial)."""
        shared = self._shared
        if shared is None:
            self._breaker.record(ticket, outcome)
            return
        self._breaker.release(ticket)
        failure = outcome is not None and not isinstance(outcome, PartnerRefusedError)
        trial = ticket is Ticket.TRIAL
        if not failure and not trial and shared.view(self.name).failures == 0:
            return
        try:
            if failure:
                await shared.failed(self.name, trial=trial)
            else:
                await shared.succeeded(self.name, trial=trial)
        except Exception as exc:  # redis unreachable: count it here instead
            shared.unavailable(self.name, exc)
            self._breaker.record(ticket, outcome)

    async def _within_timeout(self, call: Callable[[], Awaitable[T]]) -> T:
        try:
            async with asyncio.timeout(self.timeout):
                return await call()
        except TimeoutError as exc:
            if isinstance(exc, PartnerError):
                raise
            raise PartnerTimeoutError(f"{self.name}: no answer within {self.timeout}s") from exc

    def _state_changed(self, old: str, new: str) -> None:
        log.warning(
            "partner_breaker_state",
            partner=self.name,
            old=old,
            new=new,
            failures=self.failures,
            shared=self._shared is not None,
        )
        if self.on_state_change is not None:
            try:
                self.on_state_change(self.name, old, new)
            except Exception:
                log.exception("partner_breaker_listener_failed", partner=self.name)
