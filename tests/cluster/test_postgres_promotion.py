"""A PostgreSQL primary switch under opens through two nodes: the primary stopped, its
synchronous standby promoted; the nodes, on a libpq multi-host URL with
``target_session_attrs=read-write``, follow it, and nothing they acknowledged is lost."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.cluster.conftest import Cluster, eventually, three_nodes
from tests.cluster.test_failover import open_until_granted
from tests.support.pg_standby import StreamingPair, streaming_pair

pytestmark = pytest.mark.slow


async def test_the_nodes_follow_a_promoted_standby_losing_nothing_acknowledged(
    tmp_path: Path,
) -> None:
    with streaming_pair() as pair:
        await eventually(
            lambda: _now(pair.sync_state() == "sync"), within=30, what="a synchronous standby"
        )
        async with three_nodes(tmp_path, nodes=2, database_url=pair.url()) as cluster:
            await _check(cluster, pair)


async def _check(cluster: Cluster, pair: StreamingPair) -> None:
    door = cluster.resident("anna")["access_point_ids"][0]
    await cluster.token("anna")  # signed in before the switch
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
            what="opens answered through both nodes before the switch",
        )
        await asyncio.to_thread(pair.primary.stop, "fast")
        stopped_at = time.monotonic()
        await eventually(
            lambda: _now(any(a[2] == 503 and a[4] > stopped_at for a in answers)),
            within=10,
            what="a 503 while there is no primary",
        )
        await asyncio.to_thread(pair.promote)
        promoted_at = time.monotonic()
        await eventually(
            lambda: _now(
                {a[1] for a in answers if a[2] == 200 and a[4] > promoted_at} == {"n1", "n2"}
            ),
            within=20,
            what="opens answered 200 through both nodes on the promoted standby",
        )
    finally:
        stop.set()
        await opener

    assert {a[2] for a in answers} <= {200, 503, 504}, sorted({a[2] for a in answers})
    acknowledged = {a[3]["command_id"] for a in answers if a[2] == 200 and a[4] < stopped_at}
    assert acknowledged
    for key, _node, _status, _body, _ in [a for a in answers if a[2] != 200]:
        body = await open_until_granted(cluster, cluster.nodes[1], door, key)
        answers.append((key, "retry", 200, body, time.monotonic()))
    granted = sorted({a[3]["command_id"] for a in answers if a[2] == 200})
    # The promoted standby holds every open acknowledged (before the switch too), once each.
    with psycopg.connect(cluster.database_url) as conn:
        primary = conn.execute("SELECT inet_server_port(), pg_is_in_recovery()").fetchone()
        rows = conn.execute(
            "SELECT command_id, count(*) FROM audit WHERE command_id = ANY(%s) GROUP BY command_id",
            (granted,),
        ).fetchall()
    assert primary == (pair.standby.port, False), primary
    assert {str(r[0]): int(r[1]) for r in rows} == {c: 1 for c in granted}
    sent = [c["request_id"] for c in await cluster.sim_commands()]
    assert len(sent) == len(set(sent)), sent
    assert set(granted) <= set(sent)


async def _now(value: bool) -> bool:
    return value
