"""The push sender: one loop per node, claiming due outbox rows and handing them to providers.

Each provider has its own breaker (an outage of one does not hold back the others); an open
circuit puts the row back, not spending an attempt. Transient failures come back after an
exponential back-off (``BASE_DELAY`` doubling up to ``MAX_DELAY``, or the provider's
``Retry-After`` when longer); after ``MAX_ATTEMPTS`` the push is dropped (the event stays in
the resident's history). Nothing here is on an open's path: the loop only reads the outbox.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Mapping

import structlog

from propdev.partners import Breaker, CircuitOpenError
from propdev.push.errors import PushUnavailableError
from propdev.push.outbox import Delivery, Outbox
from propdev.push.provider import PushProvider, SendResult, Verdict
from propdev.push.texts import render

log = structlog.get_logger()

BASE_DELAY = 1.0
MAX_DELAY = 900.0  # Apple asks for a 15-minute back-off after 500/503
MAX_ATTEMPTS = 8
POLL = 1.0  # seconds between looks at the outbox when nobody wakes the loop
BATCH = 50


def backoff(attempts: int, *, base: float = BASE_DELAY, cap: float = MAX_DELAY) -> float:
    """The delay before attempt ``attempts + 1`` (``attempts`` ≥ 1 already failed)."""
    return float(min(cap, base * 2 ** max(0, attempts - 1)))


class PushSender:
    """Claims and sends; ``pushed``/``dropped``/``failed`` feed
    ``propdev_push_notifications_total{result}``."""

    def __init__(
        self,
        outbox: Outbox,
        providers: Mapping[str, PushProvider],
        *,
        breaker_failures: int = 5,
        breaker_reset: float = 30.0,
        monotonic: Callable[[], float] = time.monotonic,
        poll: float = POLL,
        max_attempts: int = MAX_ATTEMPTS,
        base_delay: float = BASE_DELAY,
    ) -> None:
        self.outbox = outbox
        self.providers = dict(providers)
        self.poll = poll
        self.max_attempts = max_attempts
        self.base_delay = base_delay
        self._breaker_failures = breaker_failures
        self._breaker_reset = breaker_reset
        self._monotonic = monotonic
        self.breakers = {
            name: Breaker(
                f"push:{name}",
                failures=breaker_failures,
                reset=breaker_reset,
                clock=monotonic,
                on_change=self._breaker_changed(name),
            )
            for name in self.providers
        }
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.pushed = 0
        self.dropped = 0
        self.failed = 0

    def use(self, provider: PushProvider) -> None:
        """Send ``provider.platform``'s pushes with ``provider`` (tests, a plug-in)."""
        self.providers[provider.platform] = provider
        self.breakers[provider.platform] = Breaker(
            f"push:{provider.platform}",
            failures=self._breaker_failures,
            reset=self._breaker_reset,
            clock=self._monotonic,
            on_change=self._breaker_changed(provider.platform),
        )

    @staticmethod
    def _breaker_changed(name: str) -> Callable[[str, str], None]:
        def changed(old: str, new: str) -> None:
            log.warning("push_breaker", provider=name, old=old, new=new)

        return changed

    def wake(self) -> None:
        """Rows fell due (a release): look now rather than at the next poll."""
        self._wake.set()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._loop(), name="push-sender")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        for provider in self.providers.values():
            with contextlib.suppress(Exception):
                await provider.close()

    async def _loop(self) -> None:
        while True:
            try:
                handled = await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the store is away: look again later
                log.warning("push_sender_failed", error=repr(exc))
                handled = 0
            if handled:
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.poll)
            self._wake.clear()

    async def run_once(self, limit: int = BATCH) -> int:
        """Claim one batch and send it (concurrently); how many rows were claimed."""
        self._wake.clear()
        batch = await self.outbox.claim(limit)
        if batch:
            await asyncio.gather(*(self._deliver(d) for d in batch))
        return len(batch)

    async def _deliver(self, delivery: Delivery) -> None:
        provider = self.providers.get(delivery.platform)
        if provider is None:  # this node has no credentials for the platform
            self.dropped += 1
            log.warning("push_unconfigured", platform=delivery.platform, event_id=delivery.event_id)
            await self.outbox.done(delivery)
            return
        breaker = self.breakers[delivery.platform]
        try:
            ticket = breaker.admit()
        except CircuitOpenError as exc:
            await self.outbox.retry(delivery, exc.retry_after, "circuit open", count=False)
            return
        message = render(delivery.event, delivery.locale)
        try:
            result = await provider.send(delivery.token, message)
        except asyncio.CancelledError:
            breaker.release(ticket)
            raise
        except Exception as exc:  # transport: the provider could not be reached
            breaker.record(ticket, PushUnavailableError(repr(exc)))
            await self._again(delivery, SendResult(Verdict.RETRY, reason=type(exc).__name__))
            return
        failing = result.verdict is Verdict.RETRY
        breaker.record(ticket, PushUnavailableError(result.reason) if failing else None)
        fields = {
            "provider": delivery.platform,
            "user_id": delivery.user_id,
            "event_id": delivery.event_id,
            "event_type": delivery.event.get("type"),
            "token_id": delivery.token_id,  # the row's id, never the token
            "collapse_id": message.collapse_id,
            "status": result.status,
        }
        if result.verdict is Verdict.DELIVERED:
            self.pushed += 1
            log.info("push_sent", attempts=delivery.attempts + 1, **fields)
            await self.outbox.done(delivery)
        elif result.verdict is Verdict.GONE:
            self.dropped += 1
            log.info("push_token_gone", reason=result.reason, **fields)
            await self.outbox.gone(delivery)
        elif result.verdict is Verdict.REJECTED:
            self.dropped += 1
            log.warning("push_rejected", reason=result.reason, **fields)
            await self.outbox.done(delivery)
        else:
            await self._again(delivery, result)

    async def _again(self, delivery: Delivery, result: SendResult) -> None:
        self.failed += 1
        attempts = delivery.attempts + 1
        if attempts >= self.max_attempts:
            self.dropped += 1
            log.warning(
                "push_given_up",
                provider=delivery.platform,
                event_id=delivery.event_id,
                attempts=attempts,
                reason=result.reason,
            )
            await self.outbox.done(delivery)
            return
        delay = max(backoff(attempts, base=self.base_delay), result.retry_after or 0.0)
        log.info(
            "push_retry",
            provider=delivery.platform,
            event_id=delivery.event_id,
            attempts=attempts,
            status=result.status,
            reason=result.reason,
            delay=delay,
        )
        await self.outbox.retry(delivery, delay, result.reason or str(result.status), count=True)


__all__ = ("BASE_DELAY", "MAX_ATTEMPTS", "MAX_DELAY", "PushSender", "backoff")
