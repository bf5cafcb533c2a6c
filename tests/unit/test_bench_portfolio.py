"""bench_portfolio's pure parts: the open-loop schedule, the portfolio's layout, and that every
kind of error (a non-2xx, a lost WebSocket event, a dropped socket, a warm-up error, a plate
that opened nothing) fails the figures it belongs to."""

from __future__ import annotations

from typing import Any

from bench.bench_portfolio import Curve, RushResult, Scale, figures, layout, plate_of, schedule
from bench.common import latency_summary


def test_the_arrivals_follow_the_curve_and_not_the_server() -> None:
    curve = Curve(base_rate=5, peak_rate=40, ramp_s=20, peak_s=20)
    arrivals = curve.arrivals()
    # The integral of the rate: two ramps of (5 + 40) / 2 * 20 and a peak of 40 * 20.
    assert len(arrivals) == 2 * 450 + 800
    assert arrivals == sorted(arrivals) and arrivals[-1] <= curve.duration
    at_peak = [t for t in arrivals if 25 <= t < 35]
    first_second = [t for t in arrivals if t < 1]
    assert len(at_peak) == 400  # 40/s for 10 s
    assert len(first_second) in (5, 6)  # the ramp starts at the base rate


def test_the_mix_is_drawn_with_its_weights_and_a_seed() -> None:
    curve = Curve(base_rate=100, peak_rate=100, ramp_s=0, peak_s=20)
    mix = {"open": 0.8, "plate": 0.1, "guest": 0.1}
    drawn = schedule(curve, mix, seed=1)
    assert drawn == schedule(curve, mix, seed=1)
    share = sum(1 for _, kind in drawn if kind == "open") / len(drawn)
    assert 0.75 < share < 0.85
    assert {kind for _, kind in drawn} == set(mix)


def test_residents_get_a_door_of_their_own_site_and_unique_plates() -> None:
    portfolio = layout(Scale(sites=10, residents=2000, devices=200, sockets=0))
    assert len(portfolio.devices) == 200 and len(portfolio.barriers) == 10
    assert len(set(portfolio.devices.values())) == 200
    for r in portfolio.residents:
        assert r.door.startswith(f"pf-s{r.site:03d}-door")
        assert r.door in portfolio.devices
    plates = [r.plate for r in portfolio.residents if r.plate is not None]
    assert len(plates) == 200 and len(set(plates)) == 200
    assert len({plate_of(i) for i in range(20_000)}) == 20_000


def rush(nodes: int, **changes: Any) -> RushResult:
    fields: dict[str, Any] = {
        "nodes": nodes,
        "latency": {k: latency_summary([(0.05, True)] * 10) for k in ("open", "plate", "guest")},
        "statuses": {},
        "sent": {"open": 10, "plate": 10, "guest": 10},
        "ws": {"sockets": 5, "dropped": 0, "expected": 3, "delivered": 3, "lost": 0},
        "node_cpu_s": [1.0] * nodes,
        "node_rss_mb": [100.0] * nodes,
        "window_s": 10.0,
        "late_sends_ms": 1.0,
        "client_cpu_s": 0.1,
        "idle_cpu_per_s": [0.01] * nodes,
        "warmup_ok": 5,
        "warmup_errors": 0,
    }
    fields.update(changes)
    return RushResult(**fields)


def verdicts(three: list[RushResult], one: list[RushResult]) -> dict[str, str]:
    return {f["goal"]: f["verdict"] for f in figures(three, one)}


def test_without_errors_the_figures_are_info() -> None:
    clean = verdicts([rush(3)] * 3, [rush(1)] * 3)
    assert clean == dict.fromkeys(("PFo", "PFp", "PFg", "PFw", "PFc", "PFr"), "info")


def test_an_error_fails_the_figures_of_its_kind_and_the_whole_rush_ones() -> None:
    failed_plate = latency_summary([(0.05, True)] * 9 + [(0.05, False)])
    bad = rush(1, latency={**rush(1).latency, "plate": failed_plate})
    got = verdicts([rush(3)] * 3, [rush(1), bad, rush(1)])
    assert got["PFp"] == got["PFc"] == got["PFr"] == "FAIL"
    assert got["PFo"] == got["PFg"] == got["PFw"] == "info"


def test_lost_events_dropped_sockets_warm_up_errors_and_unopened_doors_fail() -> None:
    lost = rush(3, ws={"sockets": 5, "dropped": 0, "expected": 3, "delivered": 2, "lost": 1})
    dropped = rush(3, ws={"sockets": 5, "dropped": 1, "expected": 3, "delivered": 3, "lost": 0})
    for broken in (lost, dropped):
        got = verdicts([rush(3), broken, rush(3)], [rush(1)] * 3)
        assert got["PFw"] == got["PFc"] == "FAIL" and got["PFo"] == "info"
    for broken in (rush(3, warmup_errors=1), rush(3, unopened=1)):
        got = verdicts([rush(3), broken, rush(3)], [rush(1)] * 3)
        assert got["PFc"] == got["PFr"] == "FAIL"
