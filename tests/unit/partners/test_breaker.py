"""The circuit breaker and the call guard on their own: states and their changes as listeners
hear them, the open circuit's wait, stragglers, bad settings, timeouts and a failing listener."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest
from structlog.testing import capture_logs

from propdev.partners import (
    Breaker,
    BulkheadFullError,
    CallGuard,
    CircuitOpenError,
    PartnerRefusedError,
    PartnerTimeoutError,
    PartnerUnavailableError,
)
from propdev.partners.breaker import ClockStorage, Ticket


class Clock:
    def __init__(self) -> None:
        self.now = 500.0

    def __call__(self) -> float:
        return self.now


def breaker(clock: Clock, changes: list[tuple[str, str]], **kw: float) -> Breaker:
    return Breaker(
        "acme",
        failures=int(kw.get("failures", 2)),
        reset=kw.get("reset", 30.0),
        clock=clock,
        on_change=lambda old, new: changes.append((old, new)),
        trial_retry_after=kw.get("trial_retry_after", 1.0),
    )


def trip(b: Breaker, times: int = 2) -> None:
    for _ in range(times):
        b.record(b.admit(), PartnerUnavailableError("down"))


def test_a_closed_circuit_admits_and_counts_consecutive_failures() -> None:
    changes: list[tuple[str, str]] = []
    b = breaker(Clock(), changes)
    assert b.state == "closed" and b.failures == 0 and b.retry_after() is None
    ticket = b.admit()
    assert ticket is Ticket.CLOSED
    b.record(ticket, PartnerUnavailableError("down"))
    assert b.failures == 1 and b.state == "closed"
    b.record(b.admit(), None)
    assert b.failures == 0
    assert changes == []


def test_the_failures_th_failure_opens_the_circuit_and_the_listener_hears_it() -> None:
    changes: list[tuple[str, str]] = []
    clock = Clock()
    b = breaker(clock, changes)
    trip(b)
    assert b.state == "open"
    assert changes == [("closed", "open")]
    assert b.retry_after() == pytest.approx(30.0)
    clock.now += 12.5
    assert b.retry_after() == pytest.approx(17.5)
    with pytest.raises(CircuitOpenError) as raised:
        b.admit()
    assert raised.value.partner_id == "acme"
    assert raised.value.retry_after == pytest.approx(17.5)


def test_past_the_reset_one_trial_goes_through_and_others_wait_the_trial_retry() -> None:
    changes: list[tuple[str, str]] = []
    clock = Clock()
    b = breaker(clock, changes, trial_retry_after=4.0)
    trip(b)
    clock.now += 30.0
    assert b.retry_after() == 0.0
    ticket = b.admit()
    assert ticket is Ticket.TRIAL and b.state == "half-open"
    assert changes[-1] == ("open", "half-open")
    with pytest.raises(CircuitOpenError) as raised:
        b.admit()
    assert raised.value.retry_after == 4.0
    b.record(ticket, None)
    assert b.state == "closed"
    assert changes[-1] == ("half-open", "closed")
    assert b.admit() is Ticket.CLOSED


def test_a_failed_trial_opens_the_circuit_for_another_full_reset() -> None:
    clock = Clock()
    b = breaker(clock, [])
    trip(b)
    clock.now += 31.0
    b.record(b.admit(), PartnerUnavailableError("still down"))
    assert b.state == "open"
    assert b.retry_after() == pytest.approx(30.0)


def test_a_released_trial_lets_the_next_caller_try() -> None:
    clock = Clock()
    b = breaker(clock, [])
    trip(b)
    clock.now += 31.0
    b.release(b.admit())
    assert b.admit() is Ticket.TRIAL


def test_a_refusal_is_an_answer_even_as_the_trial() -> None:
    clock = Clock()
    b = breaker(clock, [])
    trip(b)
    clock.now += 31.0
    b.record(b.admit(), PartnerRefusedError("denied"))
    assert b.state == "closed" and b.failures == 0


def test_a_straggler_admitted_before_the_circuit_opened_changes_nothing() -> None:
    clock = Clock()
    b = breaker(clock, [])
    straggler = b.admit()
    trip(b)
    b.record(straggler, None)  # a success from before the opening does not close it
    assert b.state == "open"
    clock.now += 31.0
    trial = b.admit()
    b.record(Ticket.CLOSED, PartnerUnavailableError("late"))  # nor does a late failure count
    assert b.state == "half-open"
    b.record(trial, None)
    assert b.state == "closed"


def test_the_storage_answers_the_opening_as_a_wall_clock_instant_as_old_as_the_clock_says() -> None:
    clock = Clock()
    storage = ClockStorage(clock)
    assert storage.opened_at is None
    storage.opened_at = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)  # the value is not used
    assert storage.opened_mono == 500.0
    clock.now += 20.0
    age = dt.datetime.now(dt.UTC) - storage.opened_at
    assert age.total_seconds() == pytest.approx(20.0, abs=1.0)


@pytest.mark.parametrize(
    "bad",
    [
        {"timeout": 0},
        {"breaker_failures": 0},
        {"breaker_reset": 0},
        {"max_in_flight": 0},
    ],
)
def test_a_guard_refuses_settings_that_cannot_work(bad: dict[str, float]) -> None:
    settings = {"timeout": 1.0, "breaker_failures": 1, "breaker_reset": 1.0, "max_in_flight": 1}
    with pytest.raises(ValueError):
        CallGuard("acme", **{**settings, **bad})  # type: ignore[arg-type]


def test_a_guard_accepts_the_smallest_settings_that_work() -> None:
    guard = CallGuard("acme", timeout=0.1, breaker_failures=1, breaker_reset=0.1, max_in_flight=1)
    assert guard.snapshot() == {
        "partner_id": "acme",
        "state": "closed",
        "failures": 0,
        "in_flight": 0,
        "max_in_flight": 1,
        "retry_after": None,
    }


def guard(clock: Clock, changes: list[tuple[str, str, str]] | None = None) -> CallGuard:
    return CallGuard(
        "acme",
        timeout=0.05,
        breaker_failures=1,
        breaker_reset=10.0,
        max_in_flight=1,
        clock=clock,
        on_state_change=None if changes is None else (lambda *c: changes.append(c)),
    )


async def test_a_guard_tells_its_listener_and_logs_each_state_change() -> None:
    changes: list[tuple[str, str, str]] = []
    clock = Clock()
    g = guard(clock, changes)

    async def down() -> None:
        raise PartnerUnavailableError("down")

    with capture_logs() as logs, pytest.raises(PartnerUnavailableError):
        await g.call(down)
    assert changes == [("acme", "closed", "open")]
    assert g.state == "open"
    event = next(e for e in logs if e["event"] == "partner_breaker_state")
    assert (event["partner"], event["old"], event["new"]) == ("acme", "closed", "open")
    assert event["failures"] == 1
    assert g.snapshot()["retry_after"] == pytest.approx(10.0)


async def test_a_failing_listener_is_logged_and_the_call_goes_on() -> None:
    def broken(*change: str) -> None:
        raise RuntimeError("listener bug")

    g = CallGuard(
        "acme",
        timeout=1.0,
        breaker_failures=1,
        breaker_reset=10.0,
        max_in_flight=1,
        clock=Clock(),
        on_state_change=broken,
    )

    async def down() -> None:
        raise PartnerUnavailableError("down")

    with capture_logs() as logs, pytest.raises(PartnerUnavailableError):
        await g.call(down)
    assert g.state == "open"
    assert any(e["event"] == "partner_breaker_listener_failed" for e in logs)


async def test_a_slow_call_becomes_a_partner_timeout_naming_the_upstream() -> None:
    g = guard(Clock())

    async def hang() -> None:
        await asyncio.Event().wait()

    with pytest.raises(PartnerTimeoutError) as raised:
        await g.call(hang)
    assert str(raised.value) == "acme: no answer within 0.05s"
    assert isinstance(raised.value.__cause__, TimeoutError)
    assert g.state == "open" and g.in_flight == 0


async def test_a_partner_timeout_raised_by_the_call_passes_through_as_it_is() -> None:
    g = guard(Clock())
    own = PartnerTimeoutError("the vendor's own timeout")

    async def vendor_timeout() -> None:
        raise own

    with pytest.raises(PartnerTimeoutError) as raised:
        await g.call(vendor_timeout)
    assert raised.value is own


async def test_a_full_guard_refuses_without_queueing_and_counts_nothing() -> None:
    g = guard(Clock())
    started, finish = asyncio.Event(), asyncio.Event()

    async def slow() -> str:
        started.set()
        await finish.wait()
        return "done"

    g.timeout = 5.0
    first = asyncio.create_task(g.call(slow))
    await started.wait()
    assert g.in_flight == 1
    with pytest.raises(BulkheadFullError) as raised:
        await g.call(slow)
    assert (raised.value.partner_id, raised.value.max_in_flight) == ("acme", 1)
    finish.set()
    assert await first == "done"
    assert g.in_flight == 0 and g.state == "closed"
    assert g.latency()["samples"] == 1


def test_a_breaker_asks_the_other_callers_of_a_trial_to_wait_a_second_by_default() -> None:
    clock = Clock()
    b = Breaker("acme", failures=1, reset=10.0, clock=clock, on_change=lambda old, new: None)
    b.record(b.admit(), PartnerUnavailableError("down"))
    clock.now += 10.0
    b.admit()
    with pytest.raises(CircuitOpenError) as raised:
        b.admit()
    assert (raised.value.partner_id, raised.value.retry_after) == ("acme", 1.0)


def test_the_circuit_stays_open_until_the_very_end_of_the_reset() -> None:
    clock = Clock()
    b = breaker(clock, [])
    trip(b)
    clock.now += 29.5
    with pytest.raises(CircuitOpenError) as raised:
        b.admit()
    assert raised.value.retry_after == pytest.approx(0.5)
    assert b.state == "open"


def test_after_a_failed_trial_and_another_reset_the_next_trial_goes_through() -> None:
    clock = Clock()
    b = breaker(clock, [])
    trip(b)
    clock.now += 30.0
    b.record(b.admit(), PartnerUnavailableError("still down"))
    clock.now += 30.0
    assert b.admit() is Ticket.TRIAL


def test_a_closed_circuit_that_was_open_once_has_no_wait() -> None:
    clock = Clock()
    b = breaker(clock, [])
    trip(b)
    clock.now += 30.0
    b.record(b.admit(), None)
    assert b.state == "closed" and b.retry_after() is None


def test_a_guards_bad_settings_are_named() -> None:
    with pytest.raises(ValueError) as raised:
        CallGuard("acme", timeout=0, breaker_failures=1, breaker_reset=1.0, max_in_flight=1)
    assert str(raised.value) == (
        "timeout, breaker_failures, breaker_reset, max_in_flight must be > 0"
    )


async def down() -> None:
    raise PartnerUnavailableError("down")


async def test_an_open_guard_names_its_upstream_and_asks_trial_waiters_to_wait_its_timeout() -> (
    None
):
    clock = Clock()
    g = CallGuard(
        "acme", timeout=5.0, breaker_failures=1, breaker_reset=10.0, max_in_flight=2, clock=clock
    )
    with pytest.raises(PartnerUnavailableError):
        await g.call(down)
    with pytest.raises(CircuitOpenError) as raised:
        await g.call(down)
    assert raised.value.partner_id == "acme"
    clock.now += 10.0
    started, finish = asyncio.Event(), asyncio.Event()

    async def slow() -> str:
        started.set()
        await finish.wait()
        return "ok"

    trial = asyncio.create_task(g.call(slow))
    await started.wait()
    with pytest.raises(CircuitOpenError) as waiting:
        await g.call(slow)
    assert waiting.value.retry_after == 5.0
    finish.set()
    assert await trial == "ok" and g.state == "closed"


async def test_a_cancelled_trial_lets_the_next_caller_try() -> None:
    clock = Clock()
    g = guard(clock)
    g.timeout = 5.0
    with pytest.raises(PartnerUnavailableError):
        await g.call(down)
    clock.now += 10.0
    started = asyncio.Event()

    async def hang() -> None:
        started.set()
        await asyncio.Event().wait()

    trial = asyncio.create_task(g.call(hang))
    await started.wait()
    trial.cancel()
    with pytest.raises(asyncio.CancelledError):
        await trial

    async def fine() -> str:
        return "ok"

    assert await g.call(fine) == "ok" and g.state == "closed"


async def test_a_trial_turned_away_by_a_full_bulkhead_lets_the_next_caller_try() -> None:
    clock = Clock()
    g = guard(clock)
    g.timeout = 5.0
    started, finish = asyncio.Event(), asyncio.Event()

    async def straggler() -> str:
        started.set()
        await finish.wait()
        return "late"

    first = asyncio.create_task(g.call(straggler))  # holds the only slot
    await started.wait()
    b = g._breaker  # the circuit opens behind the straggler's back
    b.record(b.admit(), PartnerUnavailableError("down"))
    clock.now += 10.0
    with pytest.raises(BulkheadFullError):
        await g.call(down)  # admitted as the trial, then turned away: the trial is given back
    finish.set()
    assert await first == "late"

    async def fine() -> str:
        return "ok"

    assert await g.call(fine) == "ok"


async def test_a_failing_listener_is_logged_with_its_upstream() -> None:
    def broken(*change: str) -> None:
        raise RuntimeError("listener bug")

    g = CallGuard(
        "acme",
        timeout=1.0,
        breaker_failures=1,
        breaker_reset=10.0,
        max_in_flight=1,
        clock=Clock(),
        on_state_change=broken,
    )
    with capture_logs() as logs, pytest.raises(PartnerUnavailableError):
        await g.call(down)
    failed = next(e for e in logs if e["event"] == "partner_breaker_listener_failed")
    assert failed["partner"] == "acme"


async def test_latencies_are_the_calls_durations_in_milliseconds_to_two_places(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from propdev.partners import guard as guard_module

    real = guard_module.time.perf_counter
    ticks = [10.0, 10.0012345, 20.0, 20.0012345]  # each call's start and end
    monkeypatch.setattr(
        guard_module.time, "perf_counter", lambda: ticks.pop(0) if ticks else real()
    )
    g = guard(Clock())
    g.timeout = 5.0

    async def fine() -> str:
        return "ok"

    await g.call(fine)
    with pytest.raises(PartnerUnavailableError):
        await g.call(down)
    assert g.latency() == {"samples": 2, "p50_ms": 1.23, "p95_ms": 1.23}
