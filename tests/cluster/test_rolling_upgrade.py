"""A rolling upgrade (docs/upgrades.md): one node of two at a time is stopped and started from
the next release, which adds an expand migration, while opens go on through both; then the node
still on the old release restarts on the upgraded schema. Not one open fails.

The next release is a copy of this tree with one more migration (tests/support/release.py):
real code on its own ``sys.path``, not a switch in this one.
"""

from __future__ import annotations

import asyncio
import signal
import uuid
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import psycopg
import pytest

from tests.cluster.conftest import Cluster, Node, three_nodes
from tests.conftest import free_port
from tests.support.eventually import eventually
from tests.support.processes import cli_env, run_cli
from tests.support.release import next_release, next_version

pytestmark = pytest.mark.slow

# What a client sees from a node that is stopping or not yet listening, and retries at the
# other node, as a load balancer does: refused, reset, or closed before the answer. An HTTP
# answer, whatever its status, is never retried.
CONNECTION_ERRORS = (
    aiohttp.ClientConnectorError,
    aiohttp.ClientOSError,
    aiohttp.ServerDisconnectedError,
)
OPENERS = 3
STOP_WITHIN = 30.0


@dataclass(frozen=True, slots=True)
class Answer:
    phase: str
    node: str
    status: int
    retried: int
    detail: str = ""  # door, Idempotency-Key and body of an answer other than 200


class OpenStream:
    """Opens through both nodes in turn, each retried at the other node on a connection error
    (with the same Idempotency-Key), until stopped; every final answer is kept."""

    def __init__(self, cluster: Cluster, doors: list[tuple[str, str]]) -> None:
        self.cluster = cluster
        self.doors = doors
        self.phase = "before"
        self.answers: list[Answer] = []
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._opener(i)) for i in range(OPENERS)]

    async def stop(self) -> None:
        self._stop.set()
        await asyncio.gather(*self._tasks)

    def count(self, phase: str) -> int:
        return sum(1 for a in self.answers if a.phase == phase)

    async def answered_in(self, phase: str, n: int) -> None:
        """Wait until ``n`` opens were answered in ``phase`` (or one failed)."""

        async def enough() -> bool:
            return self.count(phase) >= n or any(a.status != 200 for a in self.answers)

        await eventually(enough, within=60, what=f"{n} opens answered in phase {phase!r}")

    async def _opener(self, first: int) -> None:
        i = first
        nodes = self.cluster.nodes
        while not self._stop.is_set():
            username, door = self.doors[i % len(self.doors)]
            key = f"upgrade-{uuid.uuid4().hex}"
            phase = self.phase
            for retried in range(20):
                node = nodes[(i + retried) % len(nodes)]
                try:
                    status, body = await self.cluster.open(node, username, door, key)
                except CONNECTION_ERRORS:
                    await asyncio.sleep(0.05)  # both nodes restarting at once is a test bug
                    continue
                detail = "" if status == 200 else f"{door} {key} {body}"
                self.answers.append(Answer(phase, node.name, status, retried, detail))
                break
            else:
                self.answers.append(Answer(phase, "none", 0, 20))
            i += 1


async def stop_with_sigterm(node: Node) -> None:
    """SIGTERM, as an orchestrator stops a node: it drains (shards handed off), then exits 0."""
    assert node.process is not None
    node.process.proc.send_signal(signal.SIGTERM)
    code = await asyncio.wait_for(node.process.proc.wait(), STOP_WITHIN)
    assert code == 0, node.process.output()


def schema_rows(database_url: str) -> dict[int, str | None]:
    with psycopg.connect(database_url) as conn:
        rows = conn.execute("SELECT version, kind FROM schema_version").fetchall()
    return {int(r[0]): r[1] for r in rows}


@pytest.mark.timeout(240)  # two starts of a node more than a cluster test, on a shared machine
async def test_a_rolling_upgrade_with_an_expand_migration_fails_no_open(tmp_path: Path) -> None:
    version = next_version()
    release = next_release(
        tmp_path / "release",
        version,
        "upgrade test: a table and a column only the next release uses",
        [
            "CREATE TABLE upgrade_notes (id TEXT PRIMARY KEY, note TEXT NOT NULL)",
            "ALTER TABLE commands ADD COLUMN upgrade_note TEXT NOT NULL DEFAULT ''",
            "ALTER TABLE audit ADD COLUMN upgrade_note TEXT",
        ],
    )
    async with three_nodes(tmp_path, nodes=2) as cluster:
        a, b = cluster.nodes
        doors = [
            (str(r["username"]), str(door))
            for r in cluster.creds["residents"]
            for door in r["access_point_ids"]
        ]
        for username in {u for u, _ in doors}:
            await cluster.token(username)  # logged in before any node goes away
        stream = OpenStream(cluster, doors)
        stream.start()
        await stream.answered_in("before", 20)

        stream.phase = "b stopped"
        await stop_with_sigterm(b)
        await stream.answered_in("b stopped", 10)
        assert version not in schema_rows(cluster.database_url)

        stream.phase = "b starting"
        await cluster.start(b, root=release, log="n2-upgraded")
        await cluster.settled([a.name, b.name], within=30)
        assert schema_rows(cluster.database_url)[version] == "expand"
        # From here on both nodes serve: the phase in which the new release must answer.
        stream.phase = "b upgraded"
        await stream.answered_in("b upgraded", 20)

        stream.phase = "a restarting"
        await stop_with_sigterm(a)
        await cluster.start(a, log="n1-restarted")  # the old release, on the new schema
        await cluster.settled([a.name, b.name], within=30)
        stream.phase = "a restarted"
        await stream.answered_in("a restarted", 20)
        await stream.stop()

    failed = [x for x in stream.answers if x.status != 200]
    assert failed == [], f"{len(failed)} of {len(stream.answers)} opens failed: {failed[:10]}"
    served = {(x.phase, x.node) for x in stream.answers}
    assert {("b upgraded", "n2"), ("a restarted", "n1")} <= served  # each release answered
    restarted = (cluster.logs / "n1-restarted.stdout.log").read_text()
    assert "schema_versions_from_a_newer_release" in restarted
    assert f"[{version}]" in restarted


async def test_an_old_node_refuses_a_contract_step_it_does_not_know(tmp_path: Path) -> None:
    version = next_version()
    release = next_release(
        tmp_path / "release",
        version,
        "upgrade test: the index the old release's retention reads by, dropped",
        ["DROP INDEX audit_at"],
        contract=True,
    )
    env = cli_env(tmp_path / "data", PROPDEV_PORT=str(free_port()))  # the embedded store
    seeded = await run_cli(["seed-demo"], env, root=release)  # migrated by the next release
    assert seeded.returncode == 0, str(seeded)

    refused = await run_cli(["serve"], env, wait=60)

    assert refused.returncode == 1, str(refused)
    assert f"{version} (contract: upgrade test:" in refused.stderr, str(refused)
    assert refused.stderr.startswith("propdev cannot start:"), str(refused)
