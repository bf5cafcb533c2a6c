"""The resilience wrapper every partner gets: an adapter behind a ``CallGuard`` (timeout,
circuit breaker, bulkhead; ``propdev.partners.guard`` says in which order and what counts) and,
when the partner's registration sets one, a rate limit checked first (``RateLimitedError``,
the vendor not called)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import Any

import structlog

from propdev.config import Settings
from propdev.partners.acme import AcmeAdapter, AcmeHttpClient, AcmeInProcessClient, InProcessAcme
from propdev.partners.apikey import vendor_api_key
from propdev.partners.base import DeviceInfo, DeviceStatus, OpenResult, PartnerAdapter
from propdev.partners.circuits import RedisCircuits
from propdev.partners.confirmations import ConfirmsByCallback
from propdev.partners.errors import RateLimitedError
from propdev.partners.guard import CallGuard, StateListener
from propdev.partners.httpsig import request_signer
from propdev.partners.inprocess import InProcessAdapter, InProcessVendor
from propdev.partners.vendor import VendorHttpAdapter
from propdev.pki import client_context

SIMULATOR_PARTNER_ID = "simulator"

CallObserver = Callable[[str, str], contextlib.AbstractContextManager[str | None]]
"""``observe(partner_id, operation)``: wraps each call, guards included (span, metrics, log);
yields the ``traceparent`` to send the vendor, or None to keep the caller's."""
_UNOBSERVED: contextlib.nullcontext[None] = contextlib.nullcontext()

log = structlog.get_logger()


class Bucket:
    """A token bucket: ``rate`` calls per second on average, bursts of up to ``rate`` (at
    least one)."""

    def __init__(self, rate: float, clock: Callable[[], float]) -> None:
        self.rate = rate
        self._clock = clock
        self._capacity = max(1.0, rate)
        self._tokens = self._capacity
        self._at = clock()

    def take(self) -> bool:
        now = self._clock()
        self._tokens = min(self._capacity, self._tokens + (now - self._at) * self.rate)
        self._at = now
        if self._tokens < 1.0:
            return False
        self._tokens -= 1.0
        return True


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
        rate_limit: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        on_state_change: StateListener | None = None,
        observe: CallObserver | None = None,
    ) -> None:
        self._adapter = adapter
        self._observe = observe
        self._confirms_later = isinstance(adapter, ConfirmsByCallback)  # once: a slow check
        self._rate = Bucket(rate_limit, clock) if rate_limit else None
        self._guard = CallGuard(
            adapter.partner_id,
            timeout=timeout,
            breaker_failures=breaker_failures,
            breaker_reset=breaker_reset,
            max_in_flight=max_in_flight,
            clock=clock,
            on_state_change=on_state_change,
        )

    @property
    def partner_id(self) -> str:
        return self._adapter.partner_id

    @property
    def adapter(self) -> PartnerAdapter:
        return self._adapter

    @property
    def confirms_later(self) -> bool:
        """True when an open's answer is the vendor's later callback (acme's 202, then its
        ``command_result``), not the answer to our request: the open waits on the vendor's
        own schedule, so the device actor waits for it outside its mailbox."""
        return self._confirms_later

    @property
    def state(self) -> str:
        """The circuit's state: ``"closed"``, ``"open"`` or ``"half-open"``."""
        return self._guard.state

    @property
    def in_flight(self) -> int:
        return self._guard.in_flight

    def share(self, circuits: RedisCircuits) -> None:
        """Keep this partner's circuit in the cluster's ``circuits`` (``CallGuard.share``)."""
        self._guard.share(circuits)

    def snapshot(self) -> dict[str, Any]:
        """For ``/admin/api/v1/breakers`` and metrics."""
        return {**self._guard.snapshot(), "latency": self.latency()}

    def latency(self) -> dict[str, Any]:
        """p50/p95 in milliseconds over the last calls that reached the adapter."""
        return self._guard.latency()

    def _within_rate(self) -> None:
        if self._rate is not None and not self._rate.take():
            raise RateLimitedError(self.partner_id, self._rate.rate)

    async def open(
        self, device_id: str, *, request_id: str, traceparent: str | None = None
    ) -> OpenResult:
        self._within_rate()
        with self._observed("open") as ours:
            sent = ours or traceparent
            return await self._guard.call(
                lambda: self._adapter.open(device_id, request_id=request_id, traceparent=sent)
            )

    async def device_status(self, device_id: str) -> DeviceStatus:
        self._within_rate()
        with self._observed("device_status"):
            return await self._guard.call(lambda: self._adapter.device_status(device_id))

    async def list_devices(self) -> list[DeviceInfo]:
        self._within_rate()
        with self._observed("list_devices"):
            return await self._guard.call(self._adapter.list_devices)

    def _observed(self, operation: str) -> contextlib.AbstractContextManager[str | None]:
        return _UNOBSERVED if self._observe is None else self._observe(self.partner_id, operation)

    async def close(self) -> None:
        await self._adapter.close()


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
    return guarded(adapter, settings, on_state_change=on_state_change, observe=observe)


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
    return guarded(adapter, settings, on_state_change=on_state_change, observe=observe)


def guarded(
    adapter: PartnerAdapter,
    settings: Settings,
    *,
    on_state_change: StateListener | None = None,
    observe: CallObserver | None = None,
) -> PartnerGateway:
    """``adapter`` behind a gateway with the node's partner timeout and breaker settings."""
    return PartnerGateway(
        adapter,
        timeout=settings.partner_timeout,
        breaker_failures=settings.breaker_failures,
        breaker_reset=settings.breaker_reset,
        on_state_change=on_state_change,
        observe=observe,
    )
