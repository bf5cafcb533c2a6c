"""Redis behind Sentinel: the master killed (SIGKILL) under a stream of opens through two nodes.

A private rig (``tests/support/sentinel.py``): a master, its replica and three sentinels. The
nodes know only the sentinels (``PROPDEV_REDIS_SENTINELS``). After the kill the sentinels
promote the replica; the nodes reconnect to it, subscribe again, read their inboxes on it and
renew (or take again) their shard leases. What Redis held is not what makes an open durable:
an answered open is committed in the store (audit, command, idempotency answer) before its
200, so a write the replica had not received yet costs at most an ask in flight (a clear 503
or 504, retried by the client with its ``Idempotency-Key``), never an open or a second command.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.cluster.conftest import Cluster, eventually, three_nodes
from tests.cluster.test_failover import audit_counts, open_until_granted
from tests.support.sentinel import SentinelRig, ready, sentinel_rig

pytestmark = pytest.mark.slow

RESUME_WITHIN = 10.0  # the bound: opens answered again within 10 s of the kill


async def test_killing_the_redis_master_under_opens_through_two_nodes_loses_nothing(
    tmp_path: Path,
) -> None:
    with sentinel_rig() as rig:
        await eventually(lambda: ready(rig), within=60, what="master, replica and sentinels up")
        async with three_nodes(tmp_path, nodes=2, sentinels=rig.sentinels) as cluster:
            await _check(cluster, rig)


async def _check(cluster: Cluster, rig: SentinelRig) -> None:
    door = cluster.resident("anna")["access_point_ids"][0]
    owner = await cluster.owner_of(door)
    assert owner in {n.name for n in cluster.nodes}
    # (key, node, status, body, started): half the opens come to the door's owner, half are
    # forwarded over the owner's inbox stream.
    answers: list[tuple[str, str, int, dict[str, Any], float]] = []
    stop = asyncio.Event()

    async def keep_opening() -> None:
        i = 0
        while not stop.is_set():
            node = cluster.nodes[i % 2]
            key = f"k-{uuid.uuid4().hex}"
            started = time.monotonic()
            status, body = await cluster.open(node, "anna", door, key)
            answers.append((key, node.name, status, body, started))
            i += 1
            await asyncio.sleep(0.05)

    opener = asyncio.create_task(keep_opening())
    try:
        await eventually(
            lambda: _now({a[1] for a in answers if a[2] == 200} == {"n1", "n2"}),
            within=15,
            what="opens answered through both nodes before the kill",
        )
        old = await rig.master()
        assert old is not None
        rig.kill(old[1])
        killed_at = time.monotonic()
        await eventually(
            lambda: _now(
                {a[1] for a in answers if a[2] == 200 and a[4] > killed_at} == {"n1", "n2"}
            ),
            within=RESUME_WITHIN,
            what="opens answered 200 again through both nodes after the master's kill",
        )
    finally:
        stop.set()
        await opener

    new = await rig.master()
    assert new is not None and new != old, (old, new, rig.log())
    # Meanwhile only clear answers: 200, or 503/504 with a problem body.
    assert {a[2] for a in answers} <= {200, 503, 504}, sorted({a[2] for a in answers})
    # Both nodes subscribe again on the promoted master (the bus's pattern subscription).
    subscribers = await eventually(
        lambda: _pattern_subscribers(cluster), within=10, what="both nodes subscribed again"
    )
    assert subscribers == 2

    before = [a[3]["command_id"] for a in answers if a[2] == 200 and a[4] < killed_at]
    assert before
    # The shards are held again, each by the node it belongs to, on the new master.
    await cluster.settled([n.name for n in cluster.nodes], within=20)

    # A refused open retried with its key opens once (or answers what was committed).
    for key, _node, _status, _body, _ in [a for a in answers if a[2] != 200]:
        body = await open_until_granted(cluster, cluster.nodes[0], door, key)
        answers.append((key, "retry", 200, body, time.monotonic()))
    granted = sorted({a[3]["command_id"] for a in answers if a[2] == 200})
    # Nothing lost: every 200 (those before the kill too) has exactly one audit entry.
    assert audit_counts(cluster.database_url, granted) == {c: 1 for c in granted}
    # No door commanded twice for one key: each command id reached the vendor once.
    sent = [c["request_id"] for c in await cluster.sim_commands()]
    assert len(sent) == len(set(sent)), sent
    assert set(granted) <= set(sent)


async def _now(value: bool) -> bool:
    return value


async def _pattern_subscribers(cluster: Cluster) -> int | None:
    """How many clients of the master hold a pattern subscription, once at least two do."""
    clients = await cluster.redis.client_list()
    count = sum(1 for c in clients if int(c.get("psub", 0)) > 0)
    return count if count >= 2 else None
