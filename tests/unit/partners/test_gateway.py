"""The resilience gateway: circuit breaker on an injected clock, timeouts, bulkhead."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest
from structlog.testing import capture_logs

from propdev.config import Settings
from propdev.devkit import VendorSimulator, run_partner_sim
from propdev.partners import (
    BulkheadFullError,
    CircuitOpenError,
    DeviceInfo,
    DeviceStatus,
    InProcessAdapter,
    OpenResult,
    PartnerGateway,
    PartnerRefusedError,
    PartnerTimeoutError,
    PartnerUnavailableError,
    VendorHttpAdapter,
    build_gateway,
    vendor_api_key,
)

FAILURES, RESET = 3, 30.0


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class ScriptedAdapter:
    """Answers with ``outcome``; while ``gate`` is set, calls wait for it to open."""

    partner_id = "acme"

    def __init__(self) -> None:
        self.calls = 0
        self.outcome: Exception | None = None
        self.gate: asyncio.Event | None = None
        self.entered = asyncio.Condition()
        self.waiting = 0

    async def open(
        self, device_id: str, *, request_id: str, traceparent: str | None = None
    ) -> OpenResult:
        self.calls += 1
        if self.gate is not None:
            async with self.entered:
                self.waiting += 1
                self.entered.notify_all()
            await self.gate.wait()
        if self.outcome is not None:
            raise self.outcome
        return OpenResult(device_id, f"cmd-{self.calls}", confirmed_at=dt.datetime.now(dt.UTC))

    async def device_status(self, device_id: str) -> DeviceStatus:
        return DeviceStatus(device_id, True, "locked")

    async def list_devices(self) -> list[DeviceInfo]:
        return []

    async def close(self) -> None:
        pass

    async def wait_for_waiting(self, n: int) -> None:
        async with self.entered:
            await self.entered.wait_for(lambda: self.waiting >= n)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def adapter() -> ScriptedAdapter:
    return ScriptedAdapter()


@pytest.fixture
def changes() -> list[tuple[str, str, str]]:
    return []


@pytest.fixture
def gateway(
    adapter: ScriptedAdapter, clock: Clock, changes: list[tuple[str, str, str]]
) -> PartnerGateway:
    return PartnerGateway(
        adapter,
        timeout=5,
        breaker_failures=FAILURES,
        breaker_reset=RESET,
        max_in_flight=2,
        clock=clock,
        on_state_change=lambda *change: changes.append(change),
    )


async def fail(gateway: PartnerGateway, times: int) -> None:
    for n in range(times):
        with pytest.raises(PartnerUnavailableError):
            await gateway.open("door", request_id=f"fail-{n}")


async def test_calls_pass_through_while_closed(
    gateway: PartnerGateway, adapter: ScriptedAdapter
) -> None:
    result = await gateway.open("door", request_id="r1", traceparent="00-a-b-01")

    assert result.vendor_command_id == "cmd-1"
    assert gateway.state == "closed"
    assert (await gateway.device_status("door")).online


async def test_the_circuit_opens_after_n_failures_and_answers_at_once_without_calling(
    gateway: PartnerGateway, adapter: ScriptedAdapter, clock: Clock
) -> None:
    adapter.outcome = PartnerUnavailableError("down")
    await fail(gateway, FAILURES - 1)
    assert gateway.state == "closed"

    await fail(gateway, 1)
    assert gateway.state == "open"
    clock.now += 10
    with pytest.raises(CircuitOpenError) as caught:
        await gateway.open("door", request_id="r")

    assert caught.value.retry_after == pytest.approx(RESET - 10)
    assert adapter.calls == FAILURES
    assert gateway.snapshot()["retry_after"] == pytest.approx(RESET - 10)


async def test_after_the_reset_time_one_trial_call_closes_the_circuit_on_success(
    gateway: PartnerGateway,
    adapter: ScriptedAdapter,
    clock: Clock,
    changes: list[tuple[str, str, str]],
) -> None:
    adapter.outcome = PartnerUnavailableError("down")
    with capture_logs() as logs:
        await fail(gateway, FAILURES)
        clock.now += RESET
        adapter.outcome = None
        result = await gateway.open("door", request_id="trial")

    assert result.device_id == "door"
    assert gateway.state == "closed"
    assert changes == [
        ("acme", "closed", "open"),
        ("acme", "open", "half-open"),
        ("acme", "half-open", "closed"),
    ]
    events = [(e["old"], e["new"]) for e in logs if e["event"] == "partner_breaker_state"]
    assert events == [("closed", "open"), ("open", "half-open"), ("half-open", "closed")]
    assert all(e["partner"] == "acme" for e in logs if e["event"] == "partner_breaker_state")


async def test_a_failed_trial_opens_the_circuit_for_another_reset_period(
    gateway: PartnerGateway, adapter: ScriptedAdapter, clock: Clock
) -> None:
    adapter.outcome = PartnerUnavailableError("down")
    await fail(gateway, FAILURES)
    clock.now += RESET + 5

    await fail(gateway, 1)

    assert gateway.state == "open"
    with pytest.raises(CircuitOpenError) as caught:
        await gateway.open("door", request_id="r")
    assert caught.value.retry_after == pytest.approx(RESET)


async def test_only_one_trial_call_goes_through_while_half_open(
    gateway: PartnerGateway, adapter: ScriptedAdapter, clock: Clock
) -> None:
    adapter.outcome = PartnerUnavailableError("down")
    await fail(gateway, FAILURES)
    clock.now += RESET
    adapter.outcome, adapter.gate = None, asyncio.Event()

    trial = asyncio.create_task(gateway.open("door", request_id="trial"))
    await adapter.wait_for_waiting(1)
    with pytest.raises(CircuitOpenError):
        await gateway.open("door", request_id="second")
    assert gateway.state == "half-open"
    adapter.gate.set()
    await trial

    assert gateway.state == "closed"
    assert adapter.calls == FAILURES + 1


async def test_refusals_are_answers_and_never_open_the_circuit(
    gateway: PartnerGateway, adapter: ScriptedAdapter
) -> None:
    adapter.outcome = PartnerRefusedError("device_offline")
    for n in range(FAILURES * 3):
        with pytest.raises(PartnerRefusedError):
            await gateway.open("door", request_id=f"r{n}")

    assert gateway.state == "closed"
    assert gateway.snapshot()["failures"] == 0


async def test_a_refusal_resets_the_count_of_consecutive_failures(
    gateway: PartnerGateway, adapter: ScriptedAdapter
) -> None:
    adapter.outcome = PartnerUnavailableError("down")
    await fail(gateway, FAILURES - 1)
    adapter.outcome = PartnerRefusedError("denied")
    with pytest.raises(PartnerRefusedError):
        await gateway.open("door", request_id="r")
    adapter.outcome = PartnerUnavailableError("down")
    await fail(gateway, FAILURES - 1)

    assert gateway.state == "closed"


async def test_a_call_beyond_the_timeout_is_a_partner_timeout_and_a_failure(
    adapter: ScriptedAdapter, clock: Clock
) -> None:
    gateway = PartnerGateway(adapter, timeout=0.05, breaker_failures=1, breaker_reset=RESET)
    adapter.gate = asyncio.Event()  # never set: the partner never answers

    with pytest.raises(PartnerTimeoutError):
        await gateway.open("door", request_id="r")

    assert gateway.state == "open"
    assert gateway.in_flight == 0


async def test_a_full_bulkhead_refuses_at_once_without_calling_or_tripping(
    gateway: PartnerGateway, adapter: ScriptedAdapter
) -> None:
    adapter.gate = asyncio.Event()
    held = [asyncio.create_task(gateway.open("door", request_id=f"h{n}")) for n in range(2)]
    await adapter.wait_for_waiting(2)

    with pytest.raises(BulkheadFullError):
        await gateway.open("door", request_id="third")
    assert gateway.snapshot()["in_flight"] == 2
    assert adapter.calls == 2
    adapter.gate.set()
    await asyncio.gather(*held)

    assert gateway.state == "closed" and gateway.in_flight == 0
    assert (await gateway.open("door", request_id="after")).status == "opened"


async def test_a_cancelled_call_counts_nothing_and_frees_its_slot(
    adapter: ScriptedAdapter, clock: Clock
) -> None:
    gateway = PartnerGateway(
        adapter, timeout=5, breaker_failures=1, breaker_reset=RESET, max_in_flight=1, clock=clock
    )
    adapter.gate = asyncio.Event()
    call = asyncio.create_task(gateway.open("door", request_id="r"))
    await adapter.wait_for_waiting(1)

    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call

    assert gateway.state == "closed" and gateway.in_flight == 0
    adapter.gate.set()
    assert (await gateway.open("door", request_id="r2")).status == "opened"


async def test_the_snapshot_describes_the_partner(gateway: PartnerGateway) -> None:
    assert gateway.snapshot() == {
        "partner_id": "acme",
        "state": "closed",
        "failures": 0,
        "in_flight": 0,
        "max_in_flight": 2,
        "retry_after": None,
        "latency": {"samples": 0, "p50_ms": None, "p95_ms": None},
    }


async def test_the_simulator_in_error_mode_opens_the_circuit_through_the_gateway(
    sim: VendorSimulator, clock: Clock
) -> None:
    gateway = PartnerGateway(
        InProcessAdapter(sim), timeout=1, breaker_failures=2, breaker_reset=5, clock=clock
    )
    sim.set_faults("error")
    for n in range(2):
        with pytest.raises(PartnerUnavailableError):
            await gateway.open("sim-door-1", request_id=f"r{n}")
    sim.set_faults("ok")

    with pytest.raises(CircuitOpenError):
        await gateway.open("sim-door-1", request_id="r9")
    clock.now += 5
    assert (await gateway.open("sim-door-1", request_id="r9")).status == "opened"
    assert gateway.state == "closed"
    assert [c["request_id"] for c in sim.commands()] == ["r9"]


async def test_build_gateway_uses_the_in_process_simulator_when_no_partner_url_is_set(
    settings: Settings, sim: VendorSimulator
) -> None:
    gateway = build_gateway(settings, sim)

    assert isinstance(gateway.adapter, InProcessAdapter)
    assert gateway.partner_id == "simulator"
    assert (await gateway.open("sim-door-1", request_id="r")).status == "opened"
    with pytest.raises(ValueError, match="simulator"):
        build_gateway(settings, None)


async def test_build_gateway_speaks_https_to_the_partner_url(settings: Settings) -> None:
    remote = Settings(data_dir=settings.data_dir, partner_url="https://127.0.0.1:9443").resolved()

    gateway = build_gateway(remote, None)

    assert isinstance(gateway.adapter, VendorHttpAdapter)
    assert gateway.adapter.base_url == "https://127.0.0.1:9443"
    await gateway.close()


async def test_two_vendors_at_their_own_addresses_keep_their_own_bulkheads_and_connections(
    settings: Settings,
) -> None:
    """A hanging vendor fills its own bulkhead and connection pool; the other vendor's
    gateway, built the same way, still opens at once (nothing shared between partners)."""
    hanging_sim, healthy_sim = VendorSimulator(), VendorSimulator()
    hanging_sim.set_faults("slow", 600_000)
    hanging = await run_partner_sim(
        settings, port=0, sim=hanging_sim, api_key=vendor_api_key(settings.data_dir, "vendor-b")
    )
    healthy = await run_partner_sim(settings, port=0, sim=healthy_sim)
    remote = Settings(data_dir=settings.data_dir, partner_url=healthy.url).resolved()
    a = build_gateway(remote, None)
    b = build_gateway(remote, None, partner_id="vendor-b", base_url=hanging.url)
    assert isinstance(b.adapter, VendorHttpAdapter) and b.adapter.base_url == hanging.url
    assert a.adapter is not b.adapter
    full = b.snapshot()["max_in_flight"]
    stuck = [asyncio.create_task(b.open("sim-door-3", request_id=f"b{i}")) for i in range(full)]
    try:
        for _ in range(3000):  # within 30 s, every call holds a connection to the vendor
            if len(hanging_sim.commands()) == full:
                break
            await asyncio.sleep(0.01)
        assert len(hanging_sim.commands()) == full
        assert b.in_flight == full
        with pytest.raises(BulkheadFullError):
            await b.open("sim-door-3", request_id="b-more")

        answer = await a.open("sim-door-1", request_id="a1")  # 3 s partner timeout otherwise

        assert answer.status == "opened"
        assert a.in_flight == 0 and a.state == b.state == "closed"
        assert [c["request_id"] for c in healthy_sim.commands()] == ["a1"]
    finally:
        for task in stuck:
            task.cancel()
        await asyncio.gather(*stuck, return_exceptions=True)
        await a.close()
        await b.close()
        await hanging.close()
        await healthy.close()
