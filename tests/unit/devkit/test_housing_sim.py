"""The simulated housing-and-utilities system, through the in-process client."""

from __future__ import annotations

import pytest

from propdev.devkit import UtilitiesSimulator
from propdev.housing import InProcessUtilitiesClient
from propdev.partners import PartnerRefusedError


async def test_the_simulator_replays_a_key_and_refuses_a_reading_below_its_last() -> None:
    sim = UtilitiesSimulator()
    client = InProcessUtilitiesClient(sim)
    reading = {"meter_id": "m-a12-cw", "value": "240", "taken_at": "2026-11-01T10:00:00Z"}
    first = await client.submit_reading("LS-100012", reading, key="k1")
    assert await client.submit_reading("LS-100012", reading, key="k1") == first
    assert len(sim.received) == 1
    with pytest.raises(PartnerRefusedError) as below:
        await client.submit_reading("LS-100012", {**reading, "value": "239"}, key="k2")
    assert below.value.reason == "below_last_reading"
