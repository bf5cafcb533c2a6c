"""The resilience wrapper every partner gets: timeout, circuit breaker, bulkhead.

Order of checks on each call: the circuit (open → ``CircuitOpenError`` at once), the bulkhead
(full → ``BulkheadFullError``, nothing queues), then the adapter under ``asyncio.timeout``.
Refusals are answers and count as successes; timeouts, unavailability and unexpected errors
count as failures. Cancelling the caller counts nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import structlog

from propdev.config import Settings
from propdev.partners.acme import AcmeAdapter, AcmeHttpClient, AcmeInProcessClient, InProcessAcme
from propdev.partners.apikey import vendor_api_key
from propdev.partners.base import DeviceInfo, DeviceStatus, OpenResult, PartnerAdapter
from propdev.partners.breaker import Breaker
from propdev.partners.errors import BulkheadFullError, PartnerError, PartnerTimeoutError
from propdev.partners.httpsig import request_signer
from propdev.partners.inprocess import InProcessAdapter, InProcessVendor
from propdev.partners.vendor import VendorHttpAdapter
from propdev.pki import client_context

SIMULATOR_PARTNER_ID = "simulator"

LATENCY_WINDOW = 256
"""Calls whose latency ``snapshot()`` summarises (a bounded ring, read at snapshot time)."""

T = TypeVar("T")
StateListener = Callable[[str, str, str], None]
"""``on_state_change(partner_id, old_state, new_state)``."""
CallObserver = Callable[[str, str], contextlib.AbstractContextManager[str | None]]
"""``observe(partner_id, operation)``: wraps each call, guards included (span, metrics, log);
yields the ``traceparent`` to send the vendor, or None to keep the caller's."""
_UNOBSERVED: contextlib.nullcontext[None] = contextlib.nullcontext()

log = structlog.get_logger()


class PartnerGateway:
    """A ``PartnerAdapter`` that guards another one with a timeout, a breaker and a bulkhead."""

    def __init__(
        self,
        adapter: PartnerAdapter,
        *,
        timeout: float,
        breaker_failures: int,
        breaker_reset: float,
        max_in_flight: int = 64,
        clock: Callable[[], float] = time.monotonic,
        on_state_change: StateListener | None = None,
        observe: CallObserver | None = None,
    ) -> None:
        if timeout <= 0 or breaker_failures < 1 or breaker_reset <= 0 or max_in_flight < 1:
            raise ValueError("timeout, breaker_failures, breaker_reset, max_in_flight must be > 0")
        self._adapter = adapter
        self._timeout = timeout
        self._max_in_flight = max_in_flight
        self._slots = asyncio.Semaphore(max_in_flight)
        self._in_flight = 0
        self._latencies: deque[float] = deque(maxlen=LATENCY_WINDOW)  # seconds, newest last
        self.on_state_change = on_state_change
        self._observe = observe
        self._breaker = Breaker(
            adapter.partner_id,
            failures=breaker_failures,
            reset=breaker_reset,
            clock=clock,
            on_change=self._state_changed,
            trial_retry_after=timeout,
        )

    @property
    def partner_id(self) -> str:
        return self._adapter.partner_id

    @property
    def adapter(self) -> PartnerAdapter:
        return self._adapter

    @property
    def state(self) -> str:
        """The circuit's state: ``"closed"``, ``"open"`` or ``"half-open"``."""
        return self._breaker.state

    @property
    def in_flight(self) -> int:
        return self._in_flight

    def snapshot(self) -> dict[str, Any]:
        """For ``/admin/api/v1/breakers`` and metrics."""
        return {
            "partner_id": self.partner_id,
            "state": self.state,
            "failures": self._breaker.failures,
            "in_flight": self._in_flight,
            "max_in_flight": self._max_in_flight,
            "retry_after": self._breaker.retry_after(),
            "latency": self.latency(),
        }

    def latency(self) -> dict[str, Any]:
        """p50/p95 in milliseconds over the last ``LATENCY_WINDOW`` calls that reached the
        adapter (answers, refusals, errors and timeouts alike; None before the first)."""
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

    async def open(
        self, device_id: str, *, request_id: str, traceparent: str | None = None
    ) -> OpenResult:
        with self._observed("open") as ours:
            sent = ours or traceparent
            return await self._guarded(
                lambda: self._adapter.open(device_id, request_id=request_id, traceparent=sent)
            )

    async def device_status(self, device_id: str) -> DeviceStatus:
        with self._observed("device_status"):
            return await self._guarded(lambda: self._adapter.device_status(device_id))

    async def list_devices(self) -> list[DeviceInfo]:
        with self._observed("list_devices"):
            return await self._guarded(self._adapter.list_devices)

    def _observed(self, operation: str) -> contextlib.AbstractContextManager[str | None]:
        return _UNOBSERVED if self._observe is None else self._observe(self.partner_id, operation)

    async def close(self) -> None:
        await self._adapter.close()

    async def _guarded(self, call: Callable[[], Awaitable[T]]) -> T:
        ticket = self._breaker.admit()
        if self._slots.locked():
            self._breaker.release(ticket)
            raise BulkheadFullError(self.partner_id, self._max_in_flight)
        async with self._slots:  # a free slot is taken at once: the bulkhead never queues
            self._in_flight += 1
            started = time.perf_counter()
            try:
                result = await self._within_timeout(call)
            except Exception as exc:
                self._latencies.append(time.perf_counter() - started)
                self._breaker.record(ticket, exc)
                raise
            except BaseException:
                self._breaker.release(ticket)  # cancelled: no outcome to count
                raise
            finally:
                self._in_flight -= 1
            self._latencies.append(time.perf_counter() - started)
        self._breaker.record(ticket, None)
        return result

    async def _within_timeout(self, call: Callable[[], Awaitable[T]]) -> T:
        try:
            async with asyncio.timeout(self._timeout):
                return await call()
        except TimeoutError as exc:
            if isinstance(exc, PartnerError):
                raise
            raise PartnerTimeoutError(
                f"{self.partner_id}: no answer within {self._timeout}s"
            ) from exc

    def _state_changed(self, old: str, new: str) -> None:
        log.warning(
            "partner_breaker_state",
            partner=self.partner_id,
            old=old,
            new=new,
            failures=self._breaker.failures,
        )
        if self.on_state_change is not None:
            try:
                self.on_state_change(self.partner_id, old, new)
            except Exception:
                log.exception("partner_breaker_listener_failed", partner=self.partner_id)


def build_gateway(
    settings: Settings,
    sim: InProcessVendor | None,
    *,
    partner_id: str = SIMULATOR_PARTNER_ID,
    base_url: str | None = None,
    api_key: str | None = None,
    on_state_change: StateListener | None = None,
    observe: CallObserver | None = None,
) -> PartnerGateway:
    """The gateway to a vendor of the simulator's REST protocol: HTTPS to ``base_url`` (default
    ``settings.partner_url``; trusting the project CA, ``X-Api-Key`` from the data dir unless
    ``api_key`` is given), else in-process over ``sim``.

    Each gateway owns its adapter, so each partner has its own bulkhead, breaker and
    connection pool: a dead vendor does not hold another's slots or connections.
    """
    adapter: PartnerAdapter
    url = base_url or settings.partner_url
    if url is None:
        if sim is None:
            raise ValueError("embedded partner mode (no PROPDEV_PARTNER_URL) needs the simulator")
        adapter = InProcessAdapter(sim, partner_id)
    else:
        adapter = VendorHttpAdapter(
            partner_id,
            url,
            ssl_context=client_context(settings.pki_dir),
            api_key=api_key or vendor_api_key(settings.data_dir, partner_id),
            timeout=settings.partner_timeout,
            signer=request_signer(settings, partner_id),
        )
    return PartnerGateway(
        adapter,
        timeout=settings.partner_timeout,
        breaker_failures=settings.breaker_failures,
        breaker_reset=settings.breaker_reset,
        on_state_change=on_state_change,
        observe=observe,
    )


def build_acme_gateway(
    settings: Settings,
    sim: InProcessAcme | None,
    *,
    partner_id: str = "acme",
    base_url: str | None = None,
    on_state_change: StateListener | None = None,
    observe: CallObserver | None = None,
) -> PartnerGateway:
    """The gateway to an acme partner: HTTPS to ``base_url`` (default ``settings.partner_url``,
    where ``partner-sim`` serves acme too), else in-process over ``sim``."""
    url = base_url or settings.partner_url
    if url is None:
        if sim is None:
            raise ValueError("an acme partner without a URL needs the in-process simulator")
        adapter = AcmeAdapter(partner_id, AcmeInProcessClient(sim))
    else:
        client = AcmeHttpClient(
            url,
            ssl_context=client_context(settings.pki_dir),
            api_key=vendor_api_key(settings.data_dir, partner_id),
            timeout=settings.partner_timeout,
            signer=request_signer(settings, partner_id),
        )
        adapter = AcmeAdapter(partner_id, client)
    return PartnerGateway(
        adapter,
        timeout=settings.partner_timeout,
        breaker_failures=settings.breaker_failures,
        breaker_reset=settings.breaker_reset,
        on_state_change=on_state_change,
        observe=observe,
    )
