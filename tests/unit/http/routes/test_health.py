"""``/healthz`` and ``/readyz`` on an application that holds only the readiness probe."""

from __future__ import annotations

from dataclasses import dataclass, field

from propdev.http.keys import READINESS
from propdev.http.routes import health
from tests.support.routes import ClientFactory, route_app


@dataclass
class Probe:
    checks: dict[str, bool] = field(default_factory=lambda: {"store": True, "bus": True})
    draining: bool = False
    asked: int = 0

    async def readiness(self) -> dict[str, bool]:
        self.asked += 1
        return dict(self.checks)


async def test_readyz_is_200_with_the_probes_checks_when_all_pass(
    aiohttp_client: ClientFactory,
) -> None:
    app = route_app(health.routes)
    app[READINESS] = probe = Probe()
    client = await aiohttp_client(app)

    resp = await client.get("/readyz")

    assert resp.status == 200
    assert await resp.json() == {
        "ready": True,
        "checks": {"store": True, "bus": True},
        "draining": False,
    }
    assert probe.asked == 1


async def test_readyz_is_503_when_a_check_fails_and_says_the_node_drains(
    aiohttp_client: ClientFactory,
) -> None:
    app = route_app(health.routes)
    app[READINESS] = Probe({"store": True, "accepting": False}, draining=True)
    client = await aiohttp_client(app)

    resp = await client.get("/readyz")

    assert resp.status == 503
    body = await resp.json()
    assert (body["ready"], body["checks"]["accepting"], body["draining"]) == (False, False, True)


async def test_healthz_needs_no_service_at_all(aiohttp_client: ClientFactory) -> None:
    client = await aiohttp_client(route_app(health.routes))

    resp = await client.get("/healthz")

    assert (resp.status, await resp.json()) == (200, {"status": "ok"})
