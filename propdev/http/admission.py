"""Admission control: past its capacity a node sheds requests with 503 and ``Retry-After``
instead of queueing them without bound (where every request, the cheap ones too, waits behind
all the others and p99 explodes).

A ``Budget`` is a number of requests handled at once (``limit``) and a bounded FIFO of requests
waiting for one of them (``queue``; each waits at most ``wait`` seconds). A request that finds
the queue full, or waits its time out, is shed: ``ShedError`` (503, ``Retry-After``), counted
in ``propdev_http_requests_shed_total{budget, reason}``. So at ``limit + queue`` requests
(twice the capacity with the default queue, as long as the limit) the node sheds the rest.

The middleware runs once the body has been read (``body_limit_middleware``: at most
``PROPDEV_MAX_BODY`` within ``PROPDEV_BODY_TIMEOUT``), so a client trickling its body holds no
slot, and before authentication and the handler, so a shed request costs next to nothing.

Budgets, by path (``budget_for``):

- **exempt** -- ``/healthz``, ``/readyz``, ``/metrics`` (a shedding node must still answer its
  probes and scrapers, or it is restarted for being busy) and WebSockets (``/api/v1/ws``, the
  console's ``/admin/api/v1/ws``: a socket lasts for hours and would hold a slot all along;
  ``PROPDEV_WS_PER_USER`` and the connection caps bound them);
- **partner** -- partners' callbacks (``/partner/…``): their own budget, a quarter of the
  API's, so that a flood of app requests cannot shed the vendor's confirmations that the opens
  in flight are waiting for (and the reverse);
- **api** -- everything else.

``PROPDEV_MAX_INFLIGHT`` (default 128; ``0`` turns admission control off): twice the
concurrency at which a node's throughput stops growing in the committed benchmarks (Little's
law: door opens 695/s x 88 ms p50 = 61 in flight, ``/healthz`` 8,096/s x 7 ms = 57;
``docs/benchmarks/2026-11-27-abe4bb8.md``), and above a partner's bulkhead (64 calls), so that
one hung vendor cannot take every slot. ``PROPDEV_INFLIGHT_QUEUE`` (default: as many as the
limit) and ``PROPDEV_INFLIGHT_WAIT`` (seconds, default 1: at capacity the line moves in about
0.1 s, so a request that waited a second is behind a stalled node).
"""

from __future__ import annotations

import asyncio
import math
from collections import deque
from collections.abc import Awaitable, Callable
from typing import NamedTuple

import structlog
from aiohttp import web
from aiohttp.typedefs import Middleware

from propdev.http.errors import ServiceUnavailableError

log = structlog.get_logger()

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Shed = Callable[[str, str], None]
"""``on_shed(budget, reason)``: count a shed request."""

EXEMPT_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
PARTNER_PREFIX = "/partner/"


class ShedError(ServiceUnavailableError):
    """Raised when the node is past its capacity: the request was not handled."""

    kind, title = "overloaded", "Overloaded"


class BudgetStats(NamedTuple):
    in_flight: int
    limit: int
    waiting: int
    queue: int


class Budget:
    """``limit`` requests at once, ``queue`` more waiting (each at most ``wait`` seconds)."""

    def __init__(self, name: str, *, limit: int, queue: int, wait: float) -> None:
        if limit < 1 or queue < 0 or wait < 0:
            raise ValueError("limit must be >= 1, queue and wait >= 0")
        self.name = name
        self.limit = limit
        self.queue = queue
        self.wait = wait
        self.in_flight = 0
        self._waiters: deque[asyncio.Future[None]] = deque()

    def statistics(self) -> BudgetStats:
        return BudgetStats(self.in_flight, self.limit, len(self._waiters), self.queue)

    async def acquire(self) -> None:
        """Take a slot, waiting in line for one if need be; raise ``ShedError`` when the line
        is full or the wait is over."""
        if self.in_flight < self.limit and not self._waiters:
            self.in_flight += 1
            return
        if len(self._waiters) >= self.queue:
            raise self._shed("queue_full")
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            async with asyncio.timeout(self.wait):
                await waiter  # release() hands its slot over: in_flight already counts us
        except TimeoutError:
            if waiter.done() and not waiter.cancelled():
                self.release()  # handed a slot as the wait ran out: pass it on
            raise self._shed("queue_timeout") from None
        except BaseException:
            if waiter.done() and not waiter.cancelled():
                self.release()
            raise
        finally:
            if waiter in self._waiters:
                self._waiters.remove(waiter)

    def release(self) -> None:
        """Give the slot back, to the first request still waiting if there is one."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)  # the slot passes over: in_flight unchanged
                return
        self.in_flight -= 1

    def _shed(self, reason: str) -> ShedError:
        retry_after = max(1, math.ceil(self.wait))
        return ShedError(
            "The node is at capacity; try again shortly.",
            headers={"Retry-After": str(retry_after)},
            extra={"budget": self.name, "reason": reason},
        )


class Admission:
    """The node's budgets (``api`` and ``partner``); None for an exempt path."""

    def __init__(self, *, limit: int, queue: int | None = None, wait: float = 1.0) -> None:
        queue = limit if queue is None else queue
        self.api = Budget("api", limit=limit, queue=queue, wait=wait)
        self.partner = Budget(
            "partner", limit=max(1, limit // 4), queue=max(0, queue // 4), wait=wait
        )

    def budget_for(self, path: str, *, websocket: bool = False) -> Budget | None:
        if websocket or path in EXEMPT_PATHS:
            return None
        return self.partner if path.startswith(PARTNER_PREFIX) else self.api


def admission_middleware(*, admission: Admission | None, on_shed: Shed) -> Middleware:
    """Each request through its budget (``admission`` None: no control at all)."""

    @web.middleware
    async def impl(request: web.Request, handler: Handler) -> web.StreamResponse:
        if admission is None:
            return await handler(request)
        websocket = request.headers.get("Upgrade", "").lower() == "websocket"
        budget = admission.budget_for(request.path, websocket=websocket)
        if budget is None:
            return await handler(request)
        try:
            await budget.acquire()
        except ShedError as exc:
            reason = str(exc.extra["reason"])
            on_shed(budget.name, reason)
            log.warning("request_shed", budget=budget.name, reason=reason, path=request.path)
            raise
        try:
            return await handler(request)
        finally:
            budget.release()

    return impl
