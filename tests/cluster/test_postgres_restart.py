"""A restart of PostgreSQL (a private server, so that nobody else's is disturbed) while opens go
on through every node: clear 503s meanwhile, /readyz false, and nothing lost after."""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import psycopg
import pytest

from tests.cluster.conftest import Cluster, bearer, eventually, three_nodes
from tests.support.private_postgres import PrivatePostgres, private_postgres

pytestmark = pytest.mark.slow

# An open's deadline is the partner timeout (2 s in the cluster tests) plus the ask's margin;
# five times that only catches an answer that hangs, whatever the load of the machine.
ANSWER_BOUND = 10.0
OUTAGE = 4.0  # seconds at least


@dataclass(frozen=True)
class Answer:
    key: str
    node: str
    status: int
    body: dict[str, Any]
    retry_after: str | None
    content_type: str
    started: float
    took: float


async def _open(cluster: Cluster, node_index: int, door: str, key: str) -> Answer:
    node = cluster.nodes[node_index]
    headers = {**bearer(await cluster.token("anna")), "Idempotency-Key": key}
    started = time.monotonic()
    async with cluster.http.post(
        f"{node.url}/api/v1/access-points/{door}/open",
        headers=headers,
        timeout=aiohttp.ClientTimeout(total=30),
    ) as resp:
        body = await resp.json(content_type=None)
        return Answer(
            key,
            node.name,
            resp.status,
            body,
            resp.headers.get("Retry-After"),
            resp.content_type,
            started,
            time.monotonic() - started,
        )


async def _ready(cluster: Cluster, node_index: int) -> tuple[int, dict[str, Any]]:
    async with cluster.http.get(f"{cluster.nodes[node_index].url}/readyz") as resp:
        return resp.status, await resp.json()


async def test_a_restart_of_postgres_gives_clear_503s_meanwhile_and_loses_nothing(
    tmp_path: Path,
) -> None:
    with private_postgres() as server:
        async with three_nodes(tmp_path, postgres_url=server.url) as cluster:
            await _check(cluster, server)


async def _check(cluster: Cluster, server: PrivatePostgres) -> None:
    door = cluster.resident("anna")["access_point_ids"][0]
    await cluster.token("anna")  # logged in before the store goes away
    answers: list[Answer] = []
    stop = asyncio.Event()

    async def keep_opening() -> None:
        i = 0
        while not stop.is_set():
            answers.append(await _open(cluster, i % 3, door, f"k-{uuid.uuid4().hex}"))
            i += 1
            await asyncio.sleep(0.05)

    opener = asyncio.create_task(keep_opening())
    try:
        await eventually(
            lambda: _true(sum(1 for a in answers if a.status == 200) >= 3),
            within=15,
            what="opens answered before the outage",
        )
        await asyncio.to_thread(server.stop)
        down_at = time.monotonic()
        await eventually(
            lambda: _true(any(a.status == 503 and a.started > down_at for a in answers)),
            within=10,
            what="a 503 while PostgreSQL is down",
        )
        for i in range(3):
            status, body = await eventually(
                lambda i=i: _not_ready(cluster, i), within=10, what="/readyz false"
            )
            assert status == 503 and body["checks"]["store"] is False, body
        # The OAuth server's store calls (worker threads, sync engine) answer 503 too.
        for path, form in _oauth_calls(cluster):
            async with cluster.http.post(f"{cluster.nodes[1].url}{path}", data=form) as resp:
                assert resp.status == 503, (path, resp.status, await resp.text())
                assert resp.content_type == "application/problem+json"
                assert resp.headers.get("Retry-After")
        # A few seconds of outage in all, with opens going on through every node.
        seen = len(answers)
        await eventually(
            lambda: _true(len(answers) >= seen + 6 and time.monotonic() - down_at >= OUTAGE),
            within=30,
            what="opens during the outage",
        )
        await asyncio.to_thread(server.start)
        up_at = time.monotonic()
        for i in range(3):
            await eventually(lambda i=i: _is_ready(cluster, i), within=20, what="/readyz back")
        await eventually(
            lambda: _true(
                {a.node for a in answers if a.status == 200 and a.started > up_at}
                == {n.name for n in cluster.nodes}
            ),
            within=20,
            what="opens answered 200 again through every node",
        )
    finally:
        stop.set()
        await opener

    during = [a for a in answers if down_at < a.started < up_at]
    assert during, "no open was tried during the outage"
    # Clear answers meanwhile: 503 problem+json with Retry-After (a 200 only from an open that
    # committed before the server went); never a 500 or a hang past the open's deadline.
    assert {a.status for a in answers} <= {200, 503}, sorted({a.status for a in answers})
    for a in answers:
        assert a.took < ANSWER_BOUND, a
        if a.status == 503:
            assert a.content_type == "application/problem+json", a
            assert a.retry_after is not None and int(a.retry_after) >= 1, a
            assert a.body["status"] == 503 and a.body["type"].startswith("https://"), a
    assert any(a.status == 503 for a in during)

    # Every 200 has exactly one audit entry; a refused open retried with its key opens once.
    for a in [a for a in answers if a.status != 200][:5]:
        retry = await _open(cluster, 0, door, a.key)
        assert retry.status == 200, retry
        answers.append(retry)
    granted = [a.body["command_id"] for a in answers if a.status == 200]
    with psycopg.connect(cluster.database_url) as conn:
        rows = conn.execute(
            "SELECT command_id, count(*) FROM audit WHERE command_id = ANY(%s) GROUP BY command_id",
            (granted,),
        ).fetchall()
    assert {str(r[0]): int(r[1]) for r in rows} == {c: 1 for c in granted}


def _oauth_calls(cluster: Cluster) -> list[tuple[str, dict[str, str]]]:
    """A token request and a refresh (both read the store first), and a revocation."""
    client = cluster.creds["mobile_client_id"]
    return [
        (
            "/oauth/token",
            {
                "grant_type": "authorization_code",
                "code": "c" * 43,
                "redirect_uri": cluster.creds["redirect_uri"],
                "client_id": client,
                "code_verifier": "v" * 43,
            },
        ),
        (
            "/oauth/token",
            {"grant_type": "refresh_token", "refresh_token": "r" * 43, "client_id": client},
        ),
    ]


async def _true(value: bool) -> bool:
    return value


async def _not_ready(cluster: Cluster, i: int) -> tuple[int, dict[str, Any]] | None:
    status, body = await _ready(cluster, i)
    return (status, body) if status == 503 else None


async def _is_ready(cluster: Cluster, i: int) -> bool:
    status, _ = await _ready(cluster, i)
    return status == 200
