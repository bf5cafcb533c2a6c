"""SLO arithmetic on an injected clock: windows, budgets, burn rates, alerts, configuration."""

from __future__ import annotations

from pathlib import Path

import pytest

from propdev.observability import (
    DEFAULT_OBJECTIVES,
    Objective,
    RouteMatch,
    SloConfigError,
    SloTracker,
    WindowedCounter,
    load_objectives,
)

OPEN = ("POST", "/api/v1/access-points/{id}/open")


class Clock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def by_name(report: list[dict[str, object]], name: str) -> dict[str, object]:
    return next(o for o in report if o["name"] == name)


def test_a_window_counts_only_the_events_inside_it() -> None:
    counter = WindowedCounter(30 * 86400)
    t0 = 1_700_000_040.0  # 40 s into a minute
    counter.add(t0, good=False)
    counter.add(t0 + 1, good=True)
    assert counter.window(t0 + 1, 300) == (1, 2)
    assert counter.window(t0 + 10 * 60, 300) == (0, 0)  # gone from 5 min
    assert counter.window(t0 + 10 * 60, 3600) == (1, 2)
    assert counter.window(t0 + 2 * 86400, 3 * 86400) == (1, 2)
    assert counter.window(t0 + 4 * 86400, 3 * 86400) == (0, 0)
    assert counter.window(t0 + 29 * 86400, 30 * 86400) == (1, 2)
    assert counter.window(t0 + 31 * 86400, 30 * 86400) == (0, 0)


def test_ring_slots_are_reused_without_mixing_old_counts_in() -> None:
    counter = WindowedCounter(3 * 86400)
    t0 = 1_700_000_000.0
    counter.add(t0, good=False)
    later = t0 + 6 * 3600 + 60 * 7  # the minute ring has wrapped round past t0's slot
    counter.add(later, good=True)
    assert counter.window(later, 300) == (1, 1)
    assert counter.window(later, 6 * 3600) == (1, 1)
    assert counter.window(later, 3 * 86400) == (1, 2)


def test_budget_and_burn_rates_follow_the_sre_workbook() -> None:
    clock = Clock()
    tracker = SloTracker(DEFAULT_OBJECTIVES, clock=clock)
    for _ in range(995):
        tracker.record(*OPEN, 200, 0.05)
    for _ in range(5):
        tracker.record(*OPEN, 502, 0.05)
    tracker.record("GET", "/api/v1/me", 500, 0.01)  # not a door open

    report = tracker.report()
    availability = by_name(report, "door_opens_availability")
    assert (availability["good"], availability["total"]) == (995, 1000)
    assert availability["sli"] == pytest.approx(0.995)
    assert availability["burn_rates"] == {
        w: pytest.approx(5.0) for w in ("5m", "30m", "1h", "6h", "3d")
    }
    assert availability["error_budget"] == {
        "allowed_bad_ratio": pytest.approx(0.001),
        "allowed_bad_events": pytest.approx(1.0),
        "spent_ratio": pytest.approx(5.0),
        "remaining_ratio": pytest.approx(-4.0),
    }
    firing = {a["name"]: a["firing"] for a in availability["alerts"]}  # type: ignore[attr-defined]
    assert firing == {"fast_burn": False, "slow_burn": False, "steady_burn": True}

    # An hour later the short windows are clean: no page, the 3-day ticket still burns.
    clock.now += 3600 + 120
    later = by_name(tracker.report(), "door_opens_availability")
    assert later["burn_rates"]["5m"] == 0.0  # type: ignore[index]
    assert later["burn_rates"]["1h"] == 0.0  # type: ignore[index]
    assert later["burn_rates"]["6h"] == pytest.approx(5.0)  # type: ignore[index]
    assert by_name(tracker.report(), "partner_callbacks_availability")["sli"] is None


def test_latency_counts_requests_answered_within_the_threshold() -> None:
    tracker = SloTracker(DEFAULT_OBJECTIVES, clock=Clock())
    tracker.record(*OPEN, 200, 2.0)  # on the threshold: good (Prometheus' le is <=)
    tracker.record(*OPEN, 200, 2.01)
    tracker.record(*OPEN, 504, 0.1)  # fast but failed: good for latency, bad for availability
    latency = by_name(tracker.report(), "door_opens_latency")
    assert (latency["good"], latency["total"]) == (2, 3)
    availability = by_name(tracker.report(), "door_opens_availability")
    assert (availability["good"], availability["total"]) == (2, 3)


def test_a_prefix_route_matches_every_route_under_it() -> None:
    tracker = SloTracker(DEFAULT_OBJECTIVES, clock=Clock())
    tracker.record("GET", "/gateway/v1/utilities/bills", 200, 0.2)
    tracker.record("POST", "/gateway/v1/utilities/meter-readings", 503, 0.2)
    gateway = by_name(tracker.report(), "utilities_gateway_availability")
    assert (gateway["good"], gateway["total"]) == (1, 2)


def test_a_file_changes_defaults_and_adds_objectives(tmp_path: Path) -> None:
    path = tmp_path / "slo.toml"
    path.write_text(
        "[door_opens_availability]\nobjective = 0.9995\nwindow_days = 28\n"
        "[me_latency]\nintegration = 'me'\nsli = 'latency'\nobjective = 0.95\n"
        "routes = ['GET /api/v1/me']\nthreshold_seconds = 0.5\n"
    )
    objectives = {o.name: o for o in load_objectives(path)}
    assert objectives["door_opens_availability"].target == 0.9995
    assert objectives["door_opens_availability"].window == 28 * 86400
    assert objectives["door_opens_latency"] == next(
        o for o in DEFAULT_OBJECTIVES if o.name == "door_opens_latency"
    )
    assert objectives["me_latency"].routes == (RouteMatch("GET", "/api/v1/me", False),)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[door_opens_availability]\nobjective = 1.5\n", "target must be between 0 and 1"),
        ("[door_opens_latency]\nthreshold_seconds = 1.7\n", "histogram's buckets"),
        ("[door_opens_latency]\nwindow = 3\n", "unknown keys"),
        ("[new_one]\nobjective = 0.9\n", "a new objective needs"),
        ("[door_opens_availability]\nroutes = ['open']\n", "METHOD /route"),
        ("not toml [", "PROPDEV_SLO_FILE"),
    ],
)
def test_a_bad_file_is_refused_naming_the_variable(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "slo.toml"
    path.write_text(text)
    with pytest.raises(SloConfigError, match="PROPDEV_SLO_FILE") as caught:
        load_objectives(path)
    assert message in str(caught.value)


def test_objectives_validate_their_fields() -> None:
    with pytest.raises(SloConfigError, match="lower_snake_case"):
        Objective("Door", "x", "availability", 0.99, (RouteMatch.parse("* /x"),))
    with pytest.raises(SloConfigError, match="window"):
        Objective("x", "x", "availability", 0.99, (RouteMatch.parse("* /x"),), window=3600)
