"""A partner's circuit shared by two nodes through one Redis: it opens once for the cluster,
every node refuses while it is open, one node probes when half-open, and without Redis each
node falls back to its own breaker."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from redis.asyncio import Redis
from structlog.testing import capture_logs

from propdev.config import Settings
from propdev.partners import (
    CallGuard,
    CircuitOpenError,
    PartnerRefusedError,
    PartnerUnavailableError,
    RedisCircuits,
)
from propdev.registry import InProcessBus
from tests.support.eventually import eventually

REDIS_URL = "redis://127.0.0.1:6379/0"


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


class Vendor:
    """Counts the calls that reach it; fails while ``down``."""

    def __init__(self) -> None:
        self.calls = 0
        self.down = True
        self.hold: asyncio.Event | None = None

    async def open(self) -> str:
        self.calls += 1
        if self.hold is not None:
            await self.hold.wait()
        if self.down:
            raise PartnerUnavailableError("vendor down")
        return "opened"


class Node:
    def __init__(self, circuits: RedisCircuits, changes: list[tuple[str, str]]) -> None:
        self.circuits = circuits
        self.guard = CallGuard(
            "acme",
            timeout=5.0,
            breaker_failures=3,
            breaker_reset=30.0,
            max_in_flight=8,
            on_state_change=lambda _p, old, new: changes.append((old, new)),
        )
        self.guard.share(circuits)
        self.changes = changes


@pytest.fixture
async def redis() -> AsyncIterator[tuple[Redis, str]]:
    client = Redis.from_url(REDIS_URL)
    prefix = "{test-cb-" + uuid.uuid4().hex[:10] + "}:"
    try:
        yield client, prefix
    finally:
        keys = [k async for k in client.scan_iter(match=f"{prefix}*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()


@pytest.fixture
async def two_nodes(redis: tuple[Redis, str]) -> AsyncIterator[tuple[Node, Node, Clock]]:
    client, prefix = redis
    bus = InProcessBus()  # both nodes hear it, as the RedisBus's subscribers do
    clock = Clock()
    nodes = [
        Node(RedisCircuits(client, prefix=prefix, bus=bus, clock=clock, server_clock=clock), [])
        for _ in range(2)
    ]
    yield nodes[0], nodes[1], clock
    await bus.close()


async def fail(node: Node, vendor: Vendor, times: int) -> None:
    for _ in range(times):
        with pytest.raises(PartnerUnavailableError):
            await node.guard.call(vendor.open)


def states(*nodes: Node) -> Callable[[], Awaitable[list[str]]]:
    async def check() -> list[str]:
        return [n.guard.state for n in nodes]

    return check


async def test_failures_through_one_node_open_the_circuit_for_the_other(
    two_nodes: tuple[Node, Node, Clock],
) -> None:
    a, b, _ = two_nodes
    vendor = Vendor()
    await fail(a, vendor, 3)
    assert a.guard.state == "open" and vendor.calls == 3
    await eventually(
        lambda: _is(states(b), ["open"]), within=5.0, what="node b hears the circuit opened"
    )
    with pytest.raises(CircuitOpenError) as refused:
        await b.guard.call(vendor.open)
    assert vendor.calls == 3  # b did not call the vendor
    assert 29.0 < refused.value.retry_after <= 30.0
    assert a.changes == [("closed", "open")] and b.changes == [("closed", "open")]
    assert b.guard.snapshot()["state"] == "open" and b.guard.snapshot()["failures"] == 3


async def _is(check: Callable[[], Awaitable[list[str]]], expected: list[str]) -> bool:
    return await check() == expected


async def test_failures_on_two_nodes_add_up_and_a_success_ends_the_run(
    two_nodes: tuple[Node, Node, Clock],
) -> None:
    a, b, _ = two_nodes
    vendor = Vendor()
    await fail(a, vendor, 2)
    vendor.down = False
    await b.circuits.refresh()  # b knows of a's failures: its success ends the run
    assert await b.guard.call(vendor.open) == "opened"
    vendor.down = True
    await fail(a, vendor, 2)
    await fail(b, vendor, 1)
    assert b.guard.state == "open"  # 2 on a + 1 on b, with no success between them
    with pytest.raises(CircuitOpenError):
        await a.guard.call(vendor.open)  # a's own view: b's failure's announcement
    assert vendor.calls == 6


async def test_refusals_are_answers_and_do_not_count(two_nodes: tuple[Node, Node, Clock]) -> None:
    a, _, _ = two_nodes

    async def refuse() -> str:
        raise PartnerRefusedError("device_offline")

    for _ in range(5):
        with pytest.raises(PartnerRefusedError):
            await a.guard.call(refuse)
    assert a.guard.state == "closed" and a.guard.failures == 0


async def test_one_node_probes_a_half_open_circuit_and_its_success_closes_it_everywhere(
    two_nodes: tuple[Node, Node, Clock],
) -> None:
    a, b, clock = two_nodes
    vendor = Vendor()
    await fail(a, vendor, 3)
    await b.circuits.refresh()
    clock.now += 31.0
    assert a.guard.state == "half-open" and b.guard.state == "half-open"
    vendor.down = False
    vendor.hold = asyncio.Event()
    trial = asyncio.create_task(a.guard.call(vendor.open))
    await eventually(lambda: _calls(vendor, 4), within=5.0, what="a's trial reaches the vendor")
    for node in (b, a):  # while the trial is out, nobody else calls
        with pytest.raises(CircuitOpenError):
            await node.guard.call(vendor.open)
    assert vendor.calls == 4
    vendor.hold.set()
    assert await trial == "opened"
    await eventually(
        lambda: _is(states(a, b), ["closed", "closed"]), within=5.0, what="closed everywhere"
    )
    assert await b.guard.call(vendor.open) == "opened"
    assert ("half-open", "closed") in b.changes and ("open", "half-open") in a.changes


async def _calls(vendor: Vendor, n: int) -> bool:
    return vendor.calls == n


async def test_a_failed_trial_opens_the_circuit_again_for_every_node(
    two_nodes: tuple[Node, Node, Clock],
) -> None:
    a, b, clock = two_nodes
    vendor = Vendor()
    await fail(a, vendor, 3)
    clock.now += 31.0
    await b.circuits.refresh()
    await fail(b, vendor, 1)  # b's trial
    await eventually(
        lambda: _is(states(a, b), ["open", "open"]), within=5.0, what="open again everywhere"
    )
    with pytest.raises(CircuitOpenError) as refused:
        await a.guard.call(vendor.open)
    assert refused.value.retry_after > 29.0  # a new wait from the trial's failure
    assert vendor.calls == 4


async def test_without_redis_each_node_falls_back_to_its_own_breaker_and_says_so() -> None:
    dead = Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2)
    try:
        node = Node(RedisCircuits(dead, prefix="{down}:", op_timeout=0.5), [])
        vendor = Vendor()
        with capture_logs() as logs:
            await fail(node, vendor, 3)  # each call reaches the vendor: Redis never blocks it
            with pytest.raises(CircuitOpenError):
                await node.guard.call(vendor.open)
        assert vendor.calls == 3
        assert node.guard.state == "open" and not node.circuits.healthy
        unavailable = [r for r in logs if r["event"] == "partner_breaker_shared_unavailable"]
        assert len(unavailable) == 1  # once per outage, not per call
        assert node.changes == [("closed", "open")]
    finally:
        await dead.aclose()


async def test_a_node_whose_redis_comes_back_follows_the_clusters_circuit_again(
    two_nodes: tuple[Node, Node, Clock],
) -> None:
    a, b, _ = two_nodes
    vendor = Vendor()
    with capture_logs() as logs:
        b.circuits.unavailable("acme", ConnectionError("blip"))
        assert not b.circuits.healthy
        await fail(a, vendor, 3)  # b reads the circuit on a's announcement, or ...
        await b.circuits.refresh()  # ... at its next refresh
    assert b.circuits.healthy and b.guard.state == "open"
    assert any(r["event"] == "partner_breaker_shared_back" for r in logs)


async def test_a_cluster_node_keeps_its_circuits_in_the_clusters_redis(tmp_path: Path) -> None:
    from propdev.node import Node as PropdevNode

    settings = Settings.from_env(
        {
            "PROPDEV_DATA_DIR": str(tmp_path),
            "PROPDEV_REDIS_URL": REDIS_URL,
            "PROPDEV_REDIS_PREFIX": "circuits-test",
            "PROPDEV_NODE_ID": "n1",
        }
    )
    node = PropdevNode(settings)
    try:
        assert node.cluster is not None and node.circuits is not None
        assert node.circuits.redis is node.cluster.redis
        assert node.circuits.prefix == "{circuits-test}:"
    finally:
        if node.cluster is not None:
            await node.cluster.redis.aclose()
        await node.db.close()
    embedded = PropdevNode(Settings.from_env({"PROPDEV_DATA_DIR": str(tmp_path / "solo")}))
    try:
        assert embedded.circuits is None  # each gateway's own breaker, as before
    finally:
        await embedded.db.close()
