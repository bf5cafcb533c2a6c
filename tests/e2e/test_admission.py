"""A real node past its capacity: its opens held by a slow vendor fill the in-flight budget,
the next request is shed with 503 and ``Retry-After``, and its probes still answer."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.e2e.conftest import RunningNode, node_settings, running_node
from tests.e2e.test_observability import bearer, open_door, scrape, sim
from tests.support.eventually import eventually

SHED = (
    "propdev_http_requests_shed_total",
    frozenset({("budget", "api"), ("reason", "queue_full")}),
)


async def test_a_node_at_capacity_sheds_with_503_and_retry_after_while_health_answers(
    tmp_path: Path,
) -> None:
    settings = node_settings(
        tmp_path,
        PROPDEV_MAX_INFLIGHT="2",
        PROPDEV_INFLIGHT_QUEUE="0",
        PROPDEV_PARTNER_TIMEOUT="20",
    )
    async with running_node(settings) as node:
        anna = await node.token_for("anna")
        doors = node.resident("anna")["access_point_ids"]
        await sim(node, "POST", "/sim/v1/faults", mode="slow", latency_ms=3000)
        opens = [asyncio.create_task(open_door(node, anna, doors[0])) for _ in range(2)]
        await eventually(lambda: _in_flight(node, 2), within=10.0, what="two opens in flight")

        async with node.http.get(f"{node.url}/api/v1/me", headers=bearer(anna)) as refused:
            assert refused.status == 503
            assert refused.headers["Retry-After"] == "1"
            problem = await refused.json()
            assert problem["type"].endswith("/overloaded")
        async with node.http.get(f"{node.url}/healthz") as health:
            assert health.status == 200
        _, samples = await scrape(node)
        assert samples[SHED] == 1

        assert [(await task)[0] for task in opens] == [200, 200]  # the held ones finish
        async with node.http.get(f"{node.url}/api/v1/me", headers=bearer(anna)) as again:
            assert again.status == 200


async def _in_flight(node: RunningNode, n: int) -> bool:
    _, samples = await scrape(node)
    # The scrape itself is in flight too (exempt from the budget, not from the gauge).
    return samples.get(("propdev_http_requests_in_flight", frozenset()), 0) >= n + 1
