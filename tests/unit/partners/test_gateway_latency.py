"""The gateway's recent latency: a bounded ring of call durations, summarised at snapshot time."""

from __future__ import annotations

from collections.abc import Iterator
from types import SimpleNamespace

import pytest

from propdev.partners import (
    LATENCY_WINDOW,
    CircuitOpenError,
    PartnerGateway,
    PartnerUnavailableError,
)
from propdev.partners import guard as guard_module
from tests.unit.partners.test_gateway import ScriptedAdapter


class Stopwatch:
    """``perf_counter`` for the gateway: each call lasts the next of ``durations`` seconds."""

    def __init__(self, durations: list[float]) -> None:
        self._reads: Iterator[float] = iter(
            [t for d in durations for t in (0.0, d)]  # start, end of each call
        )

    def __call__(self) -> float:
        return next(self._reads)


def make_gateway(adapter: ScriptedAdapter) -> PartnerGateway:
    return PartnerGateway(adapter, timeout=5, breaker_failures=2, breaker_reset=30)


async def test_no_call_yet_means_no_latency() -> None:
    snapshot = make_gateway(ScriptedAdapter()).snapshot()
    assert snapshot["latency"] == {"samples": 0, "p50_ms": None, "p95_ms": None}


async def test_p50_and_p95_come_from_the_calls_durations(monkeypatch: pytest.MonkeyPatch) -> None:
    gateway = make_gateway(ScriptedAdapter())
    durations = [ms / 1000 for ms in range(1, 101)]  # 1..100 ms
    # Only the guard's module sees the stopwatch (not the event loop, not other modules).
    monkeypatch.setattr(guard_module, "time", SimpleNamespace(perf_counter=Stopwatch(durations)))
    for n in range(100):
        await gateway.open("door", request_id=f"r{n}")
    monkeypatch.undo()
    assert gateway.snapshot()["latency"] == {"samples": 100, "p50_ms": 50.5, "p95_ms": 95.05}


async def test_the_ring_keeps_only_the_last_calls_and_failures_count_refusals_do_not() -> None:
    adapter = ScriptedAdapter()
    gateway = make_gateway(adapter)
    for n in range(LATENCY_WINDOW + 10):
        await gateway.open("door", request_id=f"r{n}")
    assert gateway.snapshot()["latency"]["samples"] == LATENCY_WINDOW

    small = make_gateway(adapter)
    adapter.outcome = PartnerUnavailableError("down")
    for n in range(2):  # failures reached the vendor: they count (and open the circuit)
        with pytest.raises(PartnerUnavailableError):
            await small.open("door", request_id=f"f{n}")
    with pytest.raises(CircuitOpenError):  # refused before any call: no sample
        await small.open("door", request_id="refused")
    latency = small.snapshot()["latency"]
    assert latency["samples"] == 2 and latency["p50_ms"] <= latency["p95_ms"]
