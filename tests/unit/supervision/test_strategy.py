"""Strategies, intensity and backoff are pure: no event loop here."""

from __future__ import annotations

import pytest

from propdev.supervision import (
    Backoff,
    RestartIntensity,
    RestartStrategy,
    RestartWindow,
    restart_scope,
)

CHILDREN = ["a", "b", "c", "d"]


@pytest.mark.parametrize(
    ("strategy", "failed", "expected"),
    [
        (RestartStrategy.ONE_FOR_ONE, "b", ["b"]),
        (RestartStrategy.ONE_FOR_ALL, "b", ["a", "b", "c", "d"]),
        (RestartStrategy.REST_FOR_ONE, "b", ["b", "c", "d"]),
        (RestartStrategy.REST_FOR_ONE, "a", ["a", "b", "c", "d"]),
        (RestartStrategy.REST_FOR_ONE, "d", ["d"]),
    ],
)
def test_restart_scope_picks_the_children_each_strategy_restarts(
    strategy: RestartStrategy, failed: str, expected: list[str]
) -> None:
    assert restart_scope(strategy, CHILDREN, failed) == expected


def test_restart_scope_rejects_a_child_it_does_not_know() -> None:
    with pytest.raises(ValueError):
        restart_scope(RestartStrategy.ONE_FOR_ONE, CHILDREN, "z")


def test_strategies_use_otp_names() -> None:
    assert [s.value for s in RestartStrategy] == ["one_for_one", "one_for_all", "rest_for_one"]


def test_the_window_allows_intensity_restarts_within_the_period_and_refuses_one_more() -> None:
    window = RestartWindow(RestartIntensity(intensity=2, period=10.0))
    assert window.record(0.0)
    assert window.record(5.0)
    assert not window.record(9.0)


def test_restarts_older_than_the_period_leave_the_window() -> None:
    window = RestartWindow(RestartIntensity(intensity=1, period=10.0))
    assert window.record(0.0)
    assert window.record(10.0)
    assert len(window) == 1
    assert not window.record(19.0)


def test_an_intensity_of_zero_allows_no_restart() -> None:
    assert not RestartWindow(RestartIntensity(intensity=0, period=1.0)).record(0.0)


@pytest.mark.parametrize(("intensity", "period"), [(-1, 1.0), (1, 0.0)])
def test_a_nonsensical_intensity_is_refused(intensity: int, period: float) -> None:
    with pytest.raises(ValueError):
        RestartIntensity(intensity=intensity, period=period)


def test_backoff_grows_exponentially_up_to_its_maximum() -> None:
    backoff = Backoff(initial=0.1, factor=2.0, maximum=0.5)
    assert [backoff.delay(n) for n in range(5)] == [0.0, 0.1, 0.2, 0.4, 0.5]
    assert backoff.delay(10_000) == 0.5


def test_a_zero_backoff_never_waits() -> None:
    assert Backoff(initial=0).delay(7) == 0.0
