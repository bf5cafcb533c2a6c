"""The vendor's behaviour through both adapters: in-process and HTTPS to the served simulator."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest

from propdev.devkit import DEFAULT_DEVICES, VendorSimulator
from propdev.partners import (
    PartnerAdapter,
    PartnerGateway,
    PartnerRefusedError,
    PartnerTimeoutError,
    PartnerUnavailableError,
)

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


async def test_open_is_confirmed_and_recorded_with_request_id_and_traceparent(
    adapter: PartnerAdapter, sim: VendorSimulator
) -> None:
    result = await adapter.open("sim-door-1", request_id="req-1", traceparent=TRACEPARENT)

    assert result.device_id == "sim-door-1"
    assert result.status == "opened"
    assert result.vendor_command_id.startswith("cmd_")
    assert isinstance(result.confirmed_at, dt.datetime)
    [command] = sim.commands()
    assert command["device_id"] == "sim-door-1"
    assert command["command"] == "open"
    assert command["request_id"] == "req-1"
    assert command["traceparent"] == TRACEPARENT
    assert dt.datetime.fromisoformat(command["received_at"]).tzinfo is not None


async def test_commands_are_listed_oldest_first(
    adapter: PartnerAdapter, sim: VendorSimulator
) -> None:
    for n in range(3):
        await adapter.open("sim-door-2", request_id=f"req-{n}")

    assert [c["request_id"] for c in sim.commands()] == ["req-0", "req-1", "req-2"]
    assert sim.commands()[0]["traceparent"] is None


async def test_a_repeated_request_id_replays_the_answer_and_sends_no_second_command(
    adapter: PartnerAdapter, sim: VendorSimulator
) -> None:
    first = await adapter.open("sim-door-1", request_id="same")
    second = await adapter.open("sim-door-1", request_id="same")

    assert second.vendor_command_id == first.vendor_command_id
    assert len(sim.commands()) == 1


async def test_concurrent_repeats_of_a_request_id_share_one_command(
    adapter: PartnerAdapter, sim: VendorSimulator
) -> None:
    sim.set_faults("ok", latency_ms=20)

    results = await asyncio.gather(
        *(adapter.open("sim-door-1", request_id="same") for _ in range(3))
    )

    assert len({r.vendor_command_id for r in results}) == 1
    assert len(sim.commands()) == 1


async def test_deny_mode_is_a_refusal_that_the_vendor_records(
    adapter: PartnerAdapter, sim: VendorSimulator
) -> None:
    sim.set_faults("deny")

    with pytest.raises(PartnerRefusedError) as caught:
        await adapter.open("sim-door-1", request_id="req-1")

    assert caught.value.reason == "denied"
    assert [c["request_id"] for c in sim.commands()] == ["req-1"]


async def test_error_mode_makes_the_partner_unavailable_and_records_nothing(
    adapter: PartnerAdapter, sim: VendorSimulator
) -> None:
    sim.set_faults("error")

    with pytest.raises(PartnerUnavailableError):
        await adapter.open("sim-door-1", request_id="req-1")
    with pytest.raises(PartnerUnavailableError):
        await adapter.list_devices()

    assert sim.commands() == []


async def test_a_failed_request_is_processed_afresh_when_retried(
    adapter: PartnerAdapter, sim: VendorSimulator
) -> None:
    sim.set_faults("error")
    with pytest.raises(PartnerUnavailableError):
        await adapter.open("sim-door-1", request_id="req-1")
    sim.set_faults("ok")

    result = await adapter.open("sim-door-1", request_id="req-1")

    assert result.status == "opened"
    assert len(sim.commands()) == 1


@pytest.mark.parametrize("mode", ["drop", "outage"])
async def test_dropped_connections_make_the_partner_unavailable(
    adapter: PartnerAdapter, sim: VendorSimulator, mode: str
) -> None:
    sim.set_faults(mode)

    with pytest.raises(PartnerUnavailableError):
        await adapter.open("sim-door-1", request_id="req-1")
    with pytest.raises(PartnerUnavailableError):
        await adapter.device_status("sim-door-1")

    assert sim.commands() == []


async def test_slow_mode_answers_after_the_injected_latency(
    adapter: PartnerAdapter, sim: VendorSimulator
) -> None:
    sim.set_faults("slow", latency_ms=50)
    loop = asyncio.get_running_loop()
    started = loop.time()

    result = await adapter.open("sim-door-3", request_id="req-1")

    assert result.status == "opened"
    assert loop.time() - started >= 0.05  # a lower bound: a loaded machine only adds to it


async def test_slow_mode_beyond_the_timeout_is_a_partner_timeout(
    adapter: PartnerAdapter, sim: VendorSimulator
) -> None:
    sim.set_faults("slow")  # DEFAULT_SLOW_MS: far beyond the timeout
    gateway = PartnerGateway(adapter, timeout=0.1, breaker_failures=5, breaker_reset=30)

    with pytest.raises(PartnerTimeoutError):
        await gateway.open("sim-door-1", request_id="req-1")

    assert [c["request_id"] for c in sim.commands()] == ["req-1"]  # the vendor got it


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"online": False}, "device_offline"),
        ({"state": "jammed"}, "device_jammed"),
        ({"state": "busy"}, "device_busy"),
    ],
)
async def test_a_device_that_cannot_open_is_refused_with_its_reason(
    adapter: PartnerAdapter, sim: VendorSimulator, change: dict[str, object], reason: str
) -> None:
    sim.update_device("sim-barrier-1", **change)  # type: ignore[arg-type]

    with pytest.raises(PartnerRefusedError) as caught:
        await adapter.open("sim-barrier-1", request_id="req-1")

    assert caught.value.reason == reason


async def test_an_unknown_device_is_refused(adapter: PartnerAdapter) -> None:
    with pytest.raises(PartnerRefusedError) as caught:
        await adapter.open("no-such-door", request_id="req-1")
    assert caught.value.reason == "unknown_device"

    with pytest.raises(PartnerRefusedError):
        await adapter.device_status("no-such-door")


async def test_the_catalogue_lists_four_doors_a_barrier_and_added_devices(
    adapter: PartnerAdapter, sim: VendorSimulator
) -> None:
    sim.add_device("sim-gate-9", "barrier", "Back gate")

    devices = await adapter.list_devices()

    assert devices[: len(DEFAULT_DEVICES)] == list(DEFAULT_DEVICES)
    assert [d.kind for d in devices].count("door") == 4
    assert devices[-1].device_id == "sim-gate-9"
    assert (await adapter.open("sim-gate-9", request_id="r")).status == "opened"


async def test_device_status_reports_online_state_and_last_seen(
    adapter: PartnerAdapter, sim: VendorSimulator
) -> None:
    before = await adapter.device_status("sim-door-4")
    await adapter.open("sim-door-4", request_id="req-1")
    after = await adapter.device_status("sim-door-4")

    assert (before.online, before.state, before.last_seen) == (True, "locked", None)
    assert after.last_seen is not None


async def test_a_request_id_reused_for_another_device_is_refused(
    adapter: PartnerAdapter, sim: VendorSimulator
) -> None:
    await adapter.open("sim-door-1", request_id="same")

    with pytest.raises(PartnerRefusedError) as caught:
        await adapter.open("sim-door-2", request_id="same")

    assert caught.value.reason == "idempotency_key_reused"
    assert len(sim.commands()) == 1
