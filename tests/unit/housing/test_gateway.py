"""The utilities gateway guards the system as a partner's gateway does."""

from __future__ import annotations

import pytest

from propdev.devkit import UtilitiesFault, UtilitiesSimulator
from propdev.housing import InProcessUtilitiesClient, UtilitiesGateway
from propdev.partners import (
    CircuitOpenError,
    PartnerRefusedError,
    PartnerTimeoutError,
    PartnerUnavailableError,
)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


Changes = list[tuple[str, str, str]]


def gateway(
    sim: UtilitiesSimulator, clock: Clock, *, timeout: float = 1.0
) -> tuple[UtilitiesGateway, Changes]:
    changes: Changes = []
    gw = UtilitiesGateway(
        InProcessUtilitiesClient(sim),
        timeout=timeout,
        breaker_failures=2,
        breaker_reset=30.0,
        clock=clock,
        on_state_change=lambda *c: changes.append(c),
    )
    return gw, changes


async def test_failures_open_the_circuit_refusals_do_not_and_it_closes_after_reset() -> None:
    sim, clock = UtilitiesSimulator(), Clock()
    gw, changes = gateway(sim, clock)
    with pytest.raises(PartnerRefusedError) as refused:
        await gw.bills("LS-unknown", None)
    assert refused.value.reason == "unknown_account" and gw.state == "closed"

    sim.faults.mode = UtilitiesFault.ERROR
    for _ in range(2):
        with pytest.raises(PartnerUnavailableError):
            await gw.bills("LS-100012", None)
    assert gw.state == "open"
    sim.faults.mode = UtilitiesFault.OK
    with pytest.raises(CircuitOpenError) as fast:
        await gw.bills("LS-100012", None)
    assert 0 < fast.value.retry_after <= 30
    clock.now += 31
    assert len(await gw.bills("LS-100012", None)) == 3  # the trial call closes it
    assert gw.state == "closed"
    assert changes == [
        ("utilities", "closed", "open"),
        ("utilities", "open", "half-open"),
        ("utilities", "half-open", "closed"),
    ]


async def test_a_slow_system_is_a_timeout_and_an_outage_is_unavailable() -> None:
    sim = UtilitiesSimulator()
    gw, _ = gateway(sim, Clock(), timeout=0.05)
    sim.faults.mode, sim.faults.latency_ms = UtilitiesFault.SLOW, 1000
    with pytest.raises(PartnerTimeoutError):
        await gw.bills("LS-100012", None)
    sim.faults.mode = UtilitiesFault.OUTAGE
    with pytest.raises(PartnerUnavailableError):
        await gw.submit_reading("LS-100012", {"meter_id": "m-a12-cw"}, key="k")
