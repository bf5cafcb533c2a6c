"""Three real nodes (``run.py serve`` processes) linked by the machine's Redis, on a fresh
PostgreSQL database, with the vendor simulator as its own process so that "exactly one command"
is observable at ``/sim/v1/commands``. Each test gets its own cluster name (Redis key prefix).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError

from propdev.config import Settings
from propdev.registry import close_redis, preferred_owner, redis_client, shard_of
from tests.conftest import POSTGRES_URL, free_port
from tests.support.eventually import eventually
from tests.support.oauth_client import login
from tests.support.postgres import fresh_database
from tests.support.processes import (
    REPO,
    Process,
    ca_file,
    cli_env,
    run_cli,
    running,
    trusting,
)

REDIS_URL = "redis://127.0.0.1:6379/0"
NODES = 3


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def free_ports(n: int) -> list[int]:
    ports: list[int] = []
    while len(ports) < n:
        port = free_port()
        if port not in ports:
            ports.append(port)
    return ports


@dataclass
class Node:
    name: str
    port: int
    env: dict[str, str]
    process: Process | None = None

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def devices(self) -> bool:
        """True if the node hosts device actors (``PROPDEV_ROLES``, default both roles)."""
        return "devices" in self.env.get("PROPDEV_ROLES", "devices")


@dataclass
class Cluster:
    data_dir: Path
    logs: Path
    prefix: str
    redis_url: str
    sim_url: str
    database_url: str
    creds: dict[str, Any]
    http: aiohttp.ClientSession
    redis: aioredis.Redis
    nodes: list[Node]
    stack: contextlib.AsyncExitStack
    tokens: dict[str, str] = field(default_factory=dict)

    @property
    def namespace(self) -> str:
        return "{" + self.prefix + "}"

    def resident(self, username: str) -> dict[str, Any]:
        return dict(next(r for r in self.creds["residents"] if r["username"] == username))

    async def token(self, username: str) -> str:
        if username not in self.tokens:
            user = self.resident(username)
            tokens = await login(
                self.http,
                self.nodes[0].url,
                client_id=self.creds["mobile_client_id"],
                redirect_uri=self.creds["redirect_uri"],
                username=username,
                password=user["password"],
            )
            self.tokens[username] = str(tokens["access_token"])
        return self.tokens[username]

    async def start(
        self, node: Node, *, within: float = 30.0, root: Path = REPO, log: str | None = None
    ) -> None:
        """Start ``node`` (again): ``root``, the source tree it runs (another release's);
        ``log``, the name of its log files when not the node's (a restart keeps the first's)."""
        node.process = await self.stack.enter_async_context(
            running(
                log or node.name,
                ["serve"],
                node.env,
                self.logs,
                ready_url=f"{node.url}/healthz",
                ca=ca_file(self.data_dir),
                start_timeout=within,
                root=root,
            )
        )

    async def members(self) -> list[str]:
        raw = await self.redis.zrange(f"{self.namespace}:members", 0, -1)
        return sorted(m.decode() for m in raw)

    async def owners(self) -> dict[int, str | None]:
        raw = await self.redis.mget([f"{self.namespace}:shard:{s}" for s in range(64)])
        return {s: (o.decode() if o is not None else None) for s, o in enumerate(raw)}

    async def owner_of(self, access_point_id: str) -> str | None:
        return (await self.owners())[shard_of(access_point_id)]

    async def settled(self, names: list[str], *, within: float = 20.0) -> dict[int, str | None]:
        """Wait until exactly ``names`` are members, each shard is held by the member it
        belongs to among those with the ``devices`` role (so no hand-off is still to come), and
        they answer /readyz."""
        members = tuple(sorted(n for n in names if self.node(n).devices))

        async def check() -> dict[int, str | None] | None:
            if await self.members() != sorted(names):
                return None
            owners = await self.owners()
            if any(owners[s] != preferred_owner(s, members) for s in owners):
                return None
            for node in self.nodes:
                if node.name in names:
                    async with self.http.get(f"{node.url}/readyz") as resp:
                        if resp.status != 200:
                            return None
            return owners

        return dict(await eventually(check, within=within, what=f"cluster of {names} settled"))

    def node(self, name: str) -> Node:
        return next(n for n in self.nodes if n.name == name)

    async def open(
        self, node: Node, username: str, access_point_id: str, key: str | None = None
    ) -> tuple[int, dict[str, Any]]:
        headers = bearer(await self.token(username))
        if key is not None:
            headers["Idempotency-Key"] = key
        async with self.http.post(
            f"{node.url}/api/v1/access-points/{access_point_id}/open",
            headers=headers,
            timeout=aiohttp.ClientTimeout(total=30),
        ) as resp:
            return resp.status, await resp.json(content_type=None)

    async def sim_commands(self) -> list[dict[str, Any]]:
        async with self.http.get(f"{self.sim_url}/sim/v1/commands") as resp:
            assert resp.status == 200
            return list(await resp.json())

    async def set_faults(self, mode: str, latency_ms: int = 0) -> None:
        async with self.http.post(
            f"{self.sim_url}/sim/v1/faults", json={"mode": mode, "latency_ms": latency_ms}
        ) as resp:
            assert resp.status == 200, await resp.text()


def node_env(
    data_dir: Path,
    name: str,
    port: int,
    public_url: str,
    database_url: str,
    redis_url: str,
    prefix: str,
    sim_url: str,
    **extra: str,
) -> dict[str, str]:
    return cli_env(
        data_dir,
        PROPDEV_NODE_ID=name,
        PROPDEV_PORT=str(port),
        PROPDEV_PUBLIC_URL=public_url,
        PROPDEV_DATABASE_URL=database_url,
        PROPDEV_REDIS_URL=redis_url,
        PROPDEV_REDIS_PREFIX=prefix,
        PROPDEV_PARTNER_URL=sim_url,
        PROPDEV_CALLBACK_URL=public_url,
        PROPDEV_RATE_LIMIT="0",
        PROPDEV_PARTNER_TIMEOUT="2",
        PROPDEV_LOG_LEVEL="info",
        **extra,
    )


Prepare = Callable[[Path, str], Awaitable[None]]
"""``prepare(data dir, database URL)``: after the demo seed, before any process starts."""


def test_redis(redis_url: str, sentinels: list[tuple[str, int]] | None) -> aioredis.Redis:
    """The test's own client of the cluster's Redis (the master the sentinels name, if any);
    it retries a few times on a connection a restart or a failover has cut."""
    options: dict[str, Any] = {
        "retry": Retry(ExponentialBackoff(cap=1.0), 8),
        "retry_on_error": [RedisConnectionError],
    }
    if sentinels:
        return redis_client(Settings(redis_sentinels=tuple(sentinels)), **options)
    return aioredis.Redis.from_url(redis_url, **options)


@contextlib.asynccontextmanager
async def three_nodes(
    tmp_path: Path,
    redis_url: str = REDIS_URL,
    postgres_url: str = POSTGRES_URL,
    *,
    prepare: Prepare | None = None,
    per_node: Callable[[int], dict[str, str]] | None = None,
    nodes: int = NODES,
    sentinels: list[tuple[str, int]] | None = None,
    database_url: str | None = None,
    **extra: str,
) -> AsyncIterator[Cluster]:
    """Three nodes (or ``nodes``) on ``redis_url`` (or the master ``sentinels`` name) and a
    fresh database of the server at ``postgres_url`` (or the nodes go to ``database_url``, a
    database made by the caller, e.g. on a multi-host URL); ``extra``: more ``PROPDEV_*``
    variables for every node, ``per_node(i)`` for node ``i``; ``prepare``: more partners or
    doors before the simulator and the nodes start."""
    if sentinels:
        redis_url = ""  # an empty PROPDEV_REDIS_URL is unset
        extra = {**extra, "PROPDEV_REDIS_SENTINELS": ",".join(f"{h}:{p}" for h, p in sentinels)}
    async with _nodes(
        tmp_path, redis_url, postgres_url, database_url, prepare, per_node, nodes, sentinels, extra
    ) as cluster:
        yield cluster


@contextlib.asynccontextmanager
async def _given_or_fresh(postgres_url: str, database_url: str | None) -> AsyncIterator[str]:
    if database_url is not None:
        yield database_url
        return
    with fresh_database(postgres_url) as fresh:
        yield fresh


@contextlib.asynccontextmanager
async def _nodes(
    tmp_path: Path,
    redis_url: str,
    postgres_url: str,
    given_database: str | None,
    prepare: Prepare | None,
    per_node: Callable[[int], dict[str, str]] | None,
    count: int,
    sentinels: list[tuple[str, int]] | None,
    extra: dict[str, str],
) -> AsyncIterator[Cluster]:
    data_dir = tmp_path / "data"
    prefix = f"test-{uuid.uuid4().hex[:10]}"
    async with _given_or_fresh(postgres_url, given_database) as database_url:
        seeded = await run_cli(["seed-demo"], cli_env(data_dir, PROPDEV_DATABASE_URL=database_url))
        assert seeded.returncode == 0, str(seeded)
        creds = json.loads((data_dir / "demo-credentials.json").read_text())
        if prepare is not None:
            await prepare(data_dir, database_url)
        sim_port, *ports = free_ports(count + 1)
        sim_url = f"https://127.0.0.1:{sim_port}"
        public_url = f"https://127.0.0.1:{ports[0]}"
        nodes = [
            Node(
                f"n{i + 1}",
                port,
                node_env(
                    data_dir,
                    f"n{i + 1}",
                    port,
                    public_url,
                    database_url,
                    redis_url,
                    prefix,
                    sim_url,
                    **{**extra, **(per_node(i) if per_node is not None else {})},
                ),
            )
            for i, port in enumerate(ports)
        ]
        redis = test_redis(redis_url, sentinels)
        connector = aiohttp.TCPConnector(ssl=trusting(ca_file(data_dir)), force_close=True)
        try:
            async with (
                contextlib.AsyncExitStack() as stack,
                aiohttp.ClientSession(connector=connector) as http,
            ):
                await stack.enter_async_context(
                    running(
                        "partner-sim",
                        ["partner-sim", "--port", str(sim_port)],
                        cli_env(data_dir, PROPDEV_CALLBACK_URL=public_url),
                        tmp_path / "logs",
                        ready_url=f"{sim_url}/sim/v1/faults",
                        ca=ca_file(data_dir),
                    )
                )
                cluster = Cluster(
                    data_dir,
                    tmp_path / "logs",
                    prefix,
                    redis_url,
                    sim_url,
                    database_url,
                    creds,
                    http,
                    redis,
                    nodes,
                    stack,
                )
                await asyncio.gather(*(cluster.start(node) for node in nodes))
                await cluster.settled([n.name for n in nodes])
                yield cluster
        finally:
            with contextlib.suppress(Exception):
                keys = [k async for k in redis.scan_iter(match=f"{{{prefix}}}:*")]
                if keys:
                    await redis.delete(*keys)
            await close_redis(redis)


LOG_TAIL = 60


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """A failed cluster test's report carries the last lines of every process's log: the run
    that failed (in CI, on another machine) is the only one that can tell why."""
    outcome = yield
    report = outcome.get_result()
    if report.when != "call" or not report.failed:
        return
    for value in getattr(item, "funcargs", {}).values():
        if isinstance(value, Cluster):
            for path in sorted(value.logs.glob("*.log")):
                lines = path.read_text(errors="replace").splitlines()[-LOG_TAIL:]
                if lines:
                    title = f"log {path.name} (last {len(lines)})"
                    report.sections.append((title, "\n".join(lines)))


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[Cluster]:
    async with three_nodes(tmp_path) as running_cluster:
        yield running_cluster
