"""pybreaker wiring: a circuit breaker driven around awaited calls, on an injectable clock.

pybreaker's decorator records nothing for an ``async def`` (it sees a coroutine object returned,
not the outcome), so :class:`Breaker` drives it explicitly: :meth:`Breaker.admit` before the
call, :meth:`Breaker.record` with the outcome after it. Recording replays the known outcome
through ``CircuitBreaker.call`` so pybreaker's own state machine counts it; refusals are
excluded exceptions, i.e. successes.

pybreaker times the open state with ``datetime.now(UTC)``; :class:`ClockStorage` stamps the
opening with an injected monotonic clock instead, so tests move time without sleeping.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Callable

import pybreaker

from propdev.partners.errors import CircuitOpenError, PartnerRefusedError

CLOSED, OPEN, HALF_OPEN = pybreaker.STATE_CLOSED, pybreaker.STATE_OPEN, pybreaker.STATE_HALF_OPEN

StateChange = Callable[[str, str], None]


class Ticket(enum.Enum):
    """How a call was let through: normally, or as the one trial of a half-open circuit."""

    CLOSED = "closed"
    TRIAL = "trial"


class ClockStorage(pybreaker.CircuitMemoryStorage):
    """pybreaker's memory storage with the opening time read from ``clock`` (monotonic seconds).

    ``opened_at`` is answered as the wall-clock instant as far in the past as ``clock`` says the
    opening is, so pybreaker's own open-state check agrees with ours.
    """

    def __init__(self, clock: Callable[[], float]) -> None:
        super().__init__(pybreaker.STATE_CLOSED)
        self._clock = clock
        self.opened_mono: float | None = None

    @property
    def opened_at(self) -> dt.datetime | None:
        if self.opened_mono is None:
            return None
        return dt.datetime.now(dt.UTC) - dt.timedelta(seconds=self._clock() - self.opened_mono)

    @opened_at.setter
    def opened_at(self, value: dt.datetime) -> None:
        self.opened_mono = self._clock()


class _Listener(pybreaker.CircuitBreakerListener):
    def __init__(self, on_change: StateChange) -> None:
        self._on_change = on_change

    def state_change(
        self,
        cb: pybreaker.CircuitBreaker,
        old_state: pybreaker.CircuitBreakerState | None,
        new_state: pybreaker.CircuitBreakerState,
    ) -> None:
        old = old_state.name if old_state is not None else CLOSED
        if old != new_state.name:
            self._on_change(old, new_state.name)


def _replay(outcome: Exception | None) -> None:
    if outcome is not None:
        raise outcome


class Breaker:
    """A circuit breaker for awaited calls: ``admit()`` before, ``record()`` or ``release()`` after.

    Closed: every call goes through; ``failures`` consecutive failures open the circuit. Open:
    ``admit()`` raises ``CircuitOpenError(retry_after)`` until ``reset`` seconds have passed.
    Then one trial call goes through (half-open; others get ``CircuitOpenError`` with
    ``trial_retry_after``): its success closes the circuit, its failure opens it again.
    """

    def __init__(
        self,
        name: str,
        *,
        failures: int,
        reset: float,
        clock: Callable[[], float],
        on_change: StateChange,
        trial_retry_after: float = 1.0,
    ) -> None:
        self._name = name
        self._clock = clock
        self._storage = ClockStorage(clock)
        self._trial_retry_after = trial_retry_after
        self._trial_in_flight = False
        self._cb = pybreaker.CircuitBreaker(
            fail_max=failures,
            reset_timeout=reset,
            exclude=[PartnerRefusedError],
            listeners=[_Listener(on_change)],
            state_storage=self._storage,
            name=name,
            throw_new_error_on_trip=False,
        )

    @property
    def state(self) -> str:
        """``"closed"``, ``"open"`` or ``"half-open"``."""
        return self._cb.current_state

    @property
    def failures(self) -> int:
        """Consecutive failures counted so far."""
        return self._cb.fail_counter

    def retry_after(self) -> float | None:
        """Seconds until an open circuit lets a trial call through; None unless open."""
        if self.state != OPEN or self._storage.opened_mono is None:
            return None
        elapsed = self._clock() - self._storage.opened_mono
        return max(0.0, self._cb.reset_timeout - elapsed)

    def admit(self) -> Ticket:
        """Let a call through or raise ``CircuitOpenError`` (without calling anything)."""
        if self.state == OPEN:
            remaining = self.retry_after()
            if remaining is not None and remaining > 0:
                raise CircuitOpenError(self._name, remaining)
            self._cb.half_open()
        if self.state == HALF_OPEN:
            if self._trial_in_flight:
                raise CircuitOpenError(self._name, self._trial_retry_after)
            self._trial_in_flight = True
            return Ticket.TRIAL
        return Ticket.CLOSED

    def record(self, ticket: Ticket, outcome: Exception | None) -> None:
        """Count the outcome of an admitted call: None or a refusal succeeds, others fail.

        A call admitted in an earlier state (a straggler) changes nothing.
        """
        self.release(ticket)
        expected = HALF_OPEN if ticket is Ticket.TRIAL else CLOSED
        if self.state != expected:
            return
        try:
            self._cb.call(_replay, outcome)
        except Exception:
            pass  # pybreaker re-raises the failure it has just counted

    def release(self, ticket: Ticket) -> None:
        """Forget an admitted call without counting it (the caller was cancelled)."""
        if ticket is Ticket.TRIAL:
            self._trial_in_flight = False
