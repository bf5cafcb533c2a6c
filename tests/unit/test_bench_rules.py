"""The rules every benchmark figure follows (bench/common.py), without measuring anything."""

from __future__ import annotations

import asyncio

import pytest

from bench.common import (
    MIN_ROUNDS,
    Goal,
    ainterleave,
    figure,
    interleave,
    latency_summary,
    verdict,
)


def test_a_figure_with_an_error_fails_whatever_its_ratio() -> None:
    f = figure(
        "G1",
        "x",
        [10.0, 10.0, 10.0],
        [10.0, 10.0, 10.0],
        "base",
        "req/s",
        Goal(0.5),
        errors=1,
        attempts=100,
    )

    assert f["ratio"] == 1.0
    assert f["verdict"] == "FAIL"
    assert f["ok"] is False
    assert f["passed"] is False
    assert f["error_rate"] == 0.01


def test_an_error_in_the_baseline_fails_the_figure_too() -> None:
    f = figure("G1", "x", [10.0] * 3, [10.0] * 3, "base", "req/s", Goal(0.5), baseline_errors=2)

    assert f["verdict"] == "FAIL"
    assert f["invalid"] == ["2 error(s)"]


def test_a_figure_without_errors_passes_or_fails_on_its_goal() -> None:
    higher = figure("G1", "x", [6.0] * 3, [10.0] * 3, "base", "req/s", Goal(0.5))
    lower = figure("G9", "x", [30.0] * 3, [10.0] * 3, "base", "ms", Goal(2.0, higher=False))

    assert (higher["verdict"], higher["ok"]) == ("pass", True)
    assert (lower["verdict"], lower["ok"]) == ("FAIL", True)


def test_no_goal_is_info_never_pass() -> None:
    f = figure("S3", "x", [5.0] * 3, [10.0] * 3, "base", "opens/s", None)

    assert f["verdict"] == "info"
    assert f["passed"] is None
    assert f["target"] == "none"
    assert verdict(1.0, None) == ("info", [])


def test_no_goal_with_errors_still_fails() -> None:
    assert verdict(1.0, None, errors=3)[0] == "FAIL"


def test_fewer_than_three_rounds_fail_a_figure() -> None:
    f = figure("G8", "x", [1.0, 1.0], [1.0, 1.0], "base", "KiB", Goal(1.5, higher=False))

    assert f["verdict"] == "FAIL"
    assert f["invalid"] == [f"2 round(s) < {MIN_ROUNDS}"]


def test_an_absolute_goal_judges_the_value_and_still_prints_the_ratio() -> None:
    f = figure(
        "C2",
        "x",
        [4.0, 5.0, 6.0],
        [4.0] * 3,
        "floor",
        "s",
        Goal(10.0, higher=False, of="value", unit="s"),
    )

    assert f["verdict"] == "pass"
    assert f["ratio"] == 1.25
    assert f["target"] == "<= 10 s"


def test_the_ratio_is_the_median_of_the_rounds_with_its_spread() -> None:
    f = figure("G1", "x", [5.0, 9.0, 6.0], [10.0, 10.0, 10.0], "base", "req/s", Goal(0.5))

    assert f["ratio"] == 0.6
    assert (f["ratio_min"], f["ratio_max"]) == (0.5, 0.9)
    assert f["rounds"] == 3
    assert f["value_spread"] == {"min": 5.0, "median": 6.0, "max": 9.0}


def test_percentiles_skip_errors_and_report_them_beside() -> None:
    # Fast error answers (1 ms) must not pull p50/p99 down; slow successes are 100-199 ms.
    samples = [(0.001, False)] * 50 + [((100 + i) / 1000, True) for i in range(100)]

    summary = latency_summary(samples)

    assert summary["ok"] == 100
    assert summary["errors"] == 50
    assert summary["error_rate"] == pytest.approx(50 / 150)
    assert summary["p50_ms"] == pytest.approx(149.0)  # nearest rank, successes only
    assert summary["p99_ms"] == pytest.approx(199.0)
    assert summary["max_ms"] == pytest.approx(199.0)


def test_the_interleaving_runner_alternates_baseline_and_candidate() -> None:
    calls: list[str] = []

    def step(name: str, value: float) -> object:
        def run() -> float:
            calls.append(name)
            return value

        return run

    rounds = interleave(3, {"base": step("base", 10.0), "cand": step("cand", 5.0)})

    assert rounds.order == ["base", "cand"] * 3
    assert calls == rounds.order
    assert rounds.results == {"base": [10.0] * 3, "cand": [5.0] * 3}


def test_the_async_runner_alternates_too() -> None:
    async def value(v: float) -> float:
        return v

    rounds = asyncio.run(ainterleave(3, {"b": lambda: value(1.0), "c": lambda: value(2.0)}))

    assert rounds.order == ["b", "c", "b", "c", "b", "c"]


def test_the_interleaving_runner_refuses_fewer_than_three_rounds() -> None:
    with pytest.raises(ValueError, match="at least 3"):
        interleave(2, {"b": lambda: 1.0, "c": lambda: 1.0})


def test_the_runner_needs_a_baseline_and_a_candidate() -> None:
    with pytest.raises(ValueError, match="baseline"):
        interleave(3, {"only": lambda: 1.0})
