"""SLO counts of two nodes added up in one Redis: either node's report is the cluster's, the
same figures a single node's tracker gives for the same requests; without Redis a node reports
its own and keeps its counts for later."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis
from structlog.testing import capture_logs

from propdev.config import Settings
from propdev.observability import DEFAULT_OBJECTIVES, RedisSlo, SloTracker

REDIS_URL = "redis://127.0.0.1:6379/0"
OPEN = ("POST", "/api/v1/access-points/{id}/open")


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def redis() -> AsyncIterator[tuple[Redis, str]]:
    client = Redis.from_url(REDIS_URL)
    prefix = "{test-slo-" + uuid.uuid4().hex[:10] + "}:"
    try:
        yield client, prefix
    finally:
        keys = [k async for k in client.scan_iter(match=f"{prefix}*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()


def by_name(report: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {o["name"]: o for o in report}


def traffic(tracker: SloTracker, clock: Clock, *, good: int, bad: int, slow: int = 0) -> None:
    for _ in range(good):
        tracker.record(*OPEN, 200, 0.1)
    for _ in range(bad):
        tracker.record(*OPEN, 502, 0.1)
    for _ in range(slow):
        tracker.record(*OPEN, 200, 5.0)


async def test_either_nodes_report_is_the_clusters_and_matches_one_trackers_figures(
    redis: tuple[Redis, str],
) -> None:
    client, prefix = redis
    clock = Clock()
    a, b, alone = (SloTracker(DEFAULT_OBJECTIVES, clock=clock) for _ in range(3))
    shared_a = RedisSlo(a, client, prefix=prefix)
    RedisSlo(b, client, prefix=prefix)
    traffic(a, clock, good=6, bad=1)
    traffic(alone, clock, good=6, bad=1)
    clock.now += 7200.0  # two hours on: another hour bucket, the same 6 h window
    traffic(b, clock, good=2, bad=1, slow=1)
    traffic(alone, clock, good=2, bad=1, slow=1)
    assert await shared_a.flush()
    assert b.shared is not None
    await b.shared.report()  # flushes b's counts first

    for tracker in (a, b):
        scope, report = await tracker.current()
        assert scope == "cluster"
        cluster, single = by_name(report), by_name(alone.report())
        for name in ("door_opens_availability", "door_opens_latency"):
            got, want = cluster[name], single[name]
            assert (got["good"], got["total"]) == (want["good"], want["total"])
            assert got["burn_rates"] == want["burn_rates"]
        assert (
            cluster["door_opens_availability"]["good"],
            cluster["door_opens_availability"]["total"],
        ) == (9, 11)
        assert cluster["door_opens_latency"]["good"] == 10  # one slow; the 502s were fast
        assert cluster["door_opens_availability"]["burn_rates"]["1h"] == pytest.approx(
            (1 / 4) / 0.001
        )  # the last hour: b's requests only


async def test_without_redis_a_node_reports_its_own_counts_and_keeps_them_for_later() -> None:
    dead = Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2)
    try:
        clock = Clock()
        tracker = SloTracker(DEFAULT_OBJECTIVES, clock=clock)
        shared = RedisSlo(tracker, dead, prefix="{down}:", op_timeout=1.0)
        traffic(tracker, clock, good=3, bad=1)
        with capture_logs() as logs:
            scope, report = await tracker.current()
            assert not await shared.flush()
        assert scope == "node"
        assert by_name(report)["door_opens_availability"]["total"] == 4
        assert tracker.pending == {("door_opens_availability", int(clock.now // 60)): [3, 4]} | {
            ("door_opens_latency", int(clock.now // 60)): [4, 4]
        }  # not lost: added at the next flush that works
        unavailable = [r for r in logs if r["event"] == "slo_redis_unavailable"]
        assert len(unavailable) == 1
    finally:
        await dead.aclose()


async def test_an_embedded_tracker_reports_its_own_counts() -> None:
    tracker = SloTracker(DEFAULT_OBJECTIVES, clock=Clock())
    tracker.record(*OPEN, 200, 0.1)
    scope, report = await tracker.current()
    assert scope == "node" and by_name(report)["door_opens_availability"]["total"] == 1
    assert tracker.pending is None  # nothing collected for a cluster


async def test_a_cluster_node_shares_its_slo_counts_in_the_clusters_redis(tmp_path: Path) -> None:
    from propdev.node import Node

    settings = Settings.from_env(
        {
            "PROPDEV_DATA_DIR": str(tmp_path),
            "PROPDEV_REDIS_URL": REDIS_URL,
            "PROPDEV_REDIS_PREFIX": "slo-test",
            "PROPDEV_NODE_ID": "n1",
        }
    )
    node = Node(settings)
    try:
        assert node.cluster is not None and node.shared_slo is not None
        assert node.telemetry.slo.shared is node.shared_slo
        assert node.shared_slo.redis is node.cluster.redis
        assert node.shared_slo.prefix == "{slo-test}:"
    finally:
        if node.cluster is not None:
            await node.cluster.redis.aclose()
        await node.db.close()
