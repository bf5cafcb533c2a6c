"""A restart of Redis (a private redis-server, so that nobody else's is disturbed)."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from tests.cluster.conftest import Cluster, eventually, three_nodes
from tests.conftest import free_port

pytestmark = pytest.mark.slow


@contextlib.contextmanager
def redis_server(port: int, workdir: Path) -> Iterator[subprocess.Popen[bytes]]:
    binary = shutil.which("redis-server")
    assert binary is not None, "redis-server is needed for this test"
    proc = subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(workdir),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield proc
    finally:
        proc.kill()
        proc.wait()


async def _answers(port: int) -> bool:
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return False
    writer.write(b"PING\r\n")
    line = await reader.readline()
    writer.close()
    return line.startswith(b"+PONG")


async def test_a_restart_of_redis_gives_clear_503s_meanwhile_and_loses_nothing(
    tmp_path: Path,
) -> None:
    port = free_port()
    workdir = tmp_path / "redis"
    workdir.mkdir()
    first = redis_server(port, workdir)
    server = first.__enter__()
    try:
        await eventually(lambda: _answers(port), within=10, what="private redis up")
        async with three_nodes(tmp_path, redis_url=f"redis://127.0.0.1:{port}/0") as cluster:
            await _check(cluster, server, port, workdir)
    finally:
        first.__exit__(None, None, None)


async def _check(
    cluster: Cluster, server: subprocess.Popen[bytes], port: int, workdir: Path
) -> None:
    door = cluster.resident("anna")["access_point_ids"][0]
    granted: list[str] = []
    status, body = await cluster.open(cluster.nodes[0], "anna", door)
    assert status == 200, body
    granted.append(body["command_id"])

    server.kill()
    server.wait()

    async def refused_clearly() -> bool:
        status, body = await cluster.open(cluster.nodes[1], "anna", door)
        return status == 503 and body["type"].endswith("cluster-unavailable")

    await eventually(refused_clearly, within=10, what="a clear 503 while Redis is down")
    async with cluster.http.get(f"{cluster.nodes[2].url}/readyz") as resp:
        assert resp.status == 503
        assert (await resp.json())["checks"]["bus"] is False

    with redis_server(port, workdir):
        await eventually(lambda: _answers(port), within=10, what="private redis back")
        # The nodes find it again on their own: members, shards, inboxes, the bus.
        await cluster.settled([n.name for n in cluster.nodes], within=20)
        key = f"k-{uuid.uuid4().hex}"

        async def opens() -> bool:
            status, body = await cluster.open(cluster.nodes[2], "anna", door, key)
            if status == 200:
                granted.append(body["command_id"])
            return status == 200

        # Bounded by the deadlines above (hangs fail there), not measured.
        await eventually(opens, within=15, what="the door opening again", every=0.3)
        with psycopg.connect(cluster.database_url) as conn:
            rows = conn.execute(
                "SELECT command_id, count(*) FROM audit WHERE command_id = ANY(%s) "
                "GROUP BY command_id",
                (granted,),
            ).fetchall()
        assert {str(r[0]): int(r[1]) for r in rows} == {c: 1 for c in granted}
