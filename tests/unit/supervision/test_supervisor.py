"""Supervisor: order of start and stop, strategies, intensity, escalation, restart types."""

from __future__ import annotations

import pytest

from propdev.supervision import (
    Backoff,
    ChildSpec,
    EscalationError,
    Restart,
    RestartIntensity,
    RestartStrategy,
    Supervisor,
    SupervisorState,
)
from tests.unit.supervision.conftest import FakeChild, FakeClock, RecordingParent

NO_BACKOFF = Backoff(initial=0)


def make(
    ids: list[str],
    journal: list[tuple[str, str]],
    *,
    strategy: RestartStrategy = RestartStrategy.ONE_FOR_ONE,
    intensity: RestartIntensity | None = None,
    restart: Restart = Restart.PERMANENT,
    **options: object,
) -> tuple[Supervisor, dict[str, FakeChild]]:
    children = {cid: FakeChild(cid, journal) for cid in ids}
    specs = [
        ChildSpec(cid, start=lambda c=child: c, restart=restart) for cid, child in children.items()
    ]
    supervisor = Supervisor(
        "sup",
        specs,
        strategy=strategy,
        intensity=intensity or RestartIntensity(intensity=10, period=10.0),
        backoff=options.pop("backoff", NO_BACKOFF),  # type: ignore[arg-type]
        **options,  # type: ignore[arg-type]
    )
    return supervisor, children


async def test_children_start_in_order_and_stop_in_reverse(journal: list[tuple[str, str]]) -> None:
    supervisor, _ = make(["a", "b", "c"], journal)
    await supervisor.start()
    await supervisor.stop()
    assert journal == [
        ("start", "a"),
        ("start", "b"),
        ("start", "c"),
        ("stop", "c"),
        ("stop", "b"),
        ("stop", "a"),
    ]


@pytest.mark.parametrize(
    ("strategy", "expected"),
    [
        (RestartStrategy.ONE_FOR_ONE, [("start", "b")]),
        (
            RestartStrategy.ONE_FOR_ALL,
            [("stop", "c"), ("stop", "a"), ("start", "a"), ("start", "b"), ("start", "c")],
        ),
        (RestartStrategy.REST_FOR_ONE, [("stop", "c"), ("start", "b"), ("start", "c")]),
    ],
)
async def test_a_failure_restarts_what_the_strategy_says_in_otp_order(
    journal: list[tuple[str, str]], strategy: RestartStrategy, expected: list[tuple[str, str]]
) -> None:
    supervisor, children = make(["a", "b", "c"], journal, strategy=strategy)
    await supervisor.start()
    journal.clear()
    children["b"].crash()
    await supervisor.settle()
    assert journal == expected
    assert children["b"].restarts == 1
    assert supervisor.child_restarts == len([e for e in expected if e[0] == "start"])
    await supervisor.stop()


async def test_failures_spread_beyond_the_period_do_not_escalate(
    journal: list[tuple[str, str]], clock: FakeClock
) -> None:
    parent = RecordingParent()
    supervisor, children = make(
        ["a"], journal, intensity=RestartIntensity(intensity=1, period=10.0), clock=clock
    )
    supervisor.parent = parent
    await supervisor.start()
    for _ in range(3):
        children["a"].crash()
        await supervisor.settle()
        clock.now += 11.0
    assert parent.failures == []
    assert children["a"].restarts == 3
    await supervisor.stop()


async def test_exceeding_the_intensity_stops_the_subtree_and_escalates_to_the_parent(
    journal: list[tuple[str, str]], clock: FakeClock
) -> None:
    parent = RecordingParent()
    supervisor, children = make(
        ["a", "b"], journal, intensity=RestartIntensity(intensity=1, period=10.0), clock=clock
    )
    supervisor.parent = parent
    await supervisor.start()
    children["a"].crash()
    await supervisor.settle()
    clock.now += 5.0
    journal.clear()
    children["a"].crash(ValueError("again"))
    await supervisor.settle()
    assert journal == [("stop", "b"), ("stop", "a")]
    assert supervisor.state is SupervisorState.FAILED
    ((child_id, error),) = parent.failures
    assert child_id == "sup"
    assert isinstance(error, EscalationError)
    assert (error.supervisor, error.child) == ("sup", "a")
    assert isinstance(error.cause, ValueError)
    assert supervisor.snapshot()["failure"] == str(error)

    await supervisor.start()  # what the parent does next
    assert supervisor.state is SupervisorState.RUNNING
    assert supervisor.failure is None


async def test_a_root_past_its_intensity_records_the_failure_and_does_not_raise(
    journal: list[tuple[str, str]],
) -> None:
    reported: list[EscalationError] = []
    supervisor, children = make(
        ["a"],
        journal,
        intensity=RestartIntensity(intensity=0, period=10.0),
        on_escalate=reported.append,
    )
    await supervisor.start()
    children["a"].crash()
    await supervisor.settle()
    assert supervisor.crashed
    assert len(reported) == 1
    assert children["a"].state == "stopped"


async def test_a_temporary_child_is_removed_instead_of_restarted(
    journal: list[tuple[str, str]],
) -> None:
    supervisor, children = make(
        ["a", "b"], journal, strategy=RestartStrategy.ONE_FOR_ALL, restart=Restart.TEMPORARY
    )
    await supervisor.start()
    journal.clear()
    children["a"].crash()
    await supervisor.settle()
    assert journal == [("stop", "a"), ("close", "a")]
    assert "a" not in supervisor
    assert [child.id for child in supervisor.children()] == ["b"]


async def test_restarts_back_off_through_the_injected_sleep(
    journal: list[tuple[str, str]], clock: FakeClock
) -> None:
    delays: list[float] = []

    async def sleep(seconds: float) -> None:
        delays.append(seconds)

    supervisor, children = make(
        ["a"],
        journal,
        backoff=Backoff(initial=0.1, factor=2.0, maximum=1.0),
        sleep=sleep,
        clock=clock,
    )
    await supervisor.start()
    for _ in range(3):
        children["a"].crash()
        await supervisor.settle()
    assert delays == [0.1, 0.2, 0.4]


async def test_an_operator_restart_stops_and_starts_one_child_without_counting_it(
    journal: list[tuple[str, str]],
) -> None:
    supervisor, _ = make(["a", "b"], journal, intensity=RestartIntensity(intensity=0, period=10.0))
    await supervisor.start()
    journal.clear()
    await supervisor.restart_child("b")
    assert journal == [("stop", "b"), ("start", "b")]
    assert supervisor.state is SupervisorState.RUNNING  # intensity 0, yet no escalation


async def test_a_dynamic_child_is_attached_restarted_and_released_on_stop(
    journal: list[tuple[str, str]],
) -> None:
    supervisor = Supervisor("kind", backoff=NO_BACKOFF)
    await supervisor.start()
    child = FakeChild("device:1", journal)
    supervisor.attach(child)
    child.crash()
    await supervisor.settle()
    await supervisor.stop()
    assert journal == [("start", "device:1"), ("stop", "device:1"), ("close", "device:1")]
    assert len(supervisor) == 0


async def test_nested_supervisors_escalate_to_their_parent_which_restarts_them(
    journal: list[tuple[str, str]],
) -> None:
    inner, children = make(["a"], journal, intensity=RestartIntensity(intensity=0, period=10.0))
    outer = Supervisor(
        "outer",
        [ChildSpec("sup", start=lambda: inner, shutdown=None)],
        backoff=NO_BACKOFF,
        intensity=RestartIntensity(intensity=5, period=10.0),
    )
    await outer.start()
    children["a"].crash()
    await outer.settle()
    assert inner.state is SupervisorState.RUNNING
    assert inner.restarts == 1
    assert journal == [("start", "a"), ("stop", "a"), ("start", "a")]
    snapshot = outer.snapshot()
    assert snapshot["supervisors"][0]["restarts"] == 1
    assert snapshot["child_restarts"] == 1
    await outer.stop()
