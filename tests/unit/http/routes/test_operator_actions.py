"""Draining a node, on an application holding only the node's id, the view of the nodes, the
drain and the audit log (a real one, on SQLite)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from propdev.http.keys import AUDIT, DRAIN, NODE_ID, NODES
from propdev.http.routes import operator_actions
from propdev.http.services import EmbeddedNodes, Nodes
from propdev.storage import Database
from propdev.storage.audit import AuditLog
from tests.support.routes import ClientFactory, TwoNodes, caller, route_app

OPERATOR = caller("u-op", "operator")


class Drainer:
    def __init__(self) -> None:
        self.calls = 0
        self.draining = False

    async def drain(self) -> dict[str, Any]:
        self.calls += 1
        already, self.draining = self.draining, True
        return {
            "node_id": "n-1",
            "draining": True,
            "already": already,
            "shards_handed_off": 0,
            "actors_passivated": 3,
        }


def drain_app(db: Database, nodes: Nodes, drainer: Drainer) -> web.Application:
    app = route_app(operator_actions.routes, calling=OPERATOR)
    app[NODE_ID] = "n-1"
    app[NODES] = nodes
    app[DRAIN] = drainer
    app[AUDIT] = AuditLog(db)
    return app


async def test_draining_this_node_drains_it_once_and_audits_it_once(
    db: Database, aiohttp_client: ClientFactory
) -> None:
    drainer = Drainer()
    client = await aiohttp_client(drain_app(db, EmbeddedNodes("n-1"), drainer))

    first = await client.post("/admin/api/v1/nodes/n-1/drain")
    again = await client.post("/admin/api/v1/nodes/n-1/drain")

    assert (first.status, (await first.json())["actors_passivated"]) == (200, 3)
    assert (again.status, (await again.json())["already"]) == (200, True)
    assert drainer.calls == 2
    entries = await AuditLog(db).page()
    assert [(e["actor"], e["action"]) for e in entries] == [("operator:u-op", "node.drain")]
    assert (entries[0]["reason"], entries[0]["subject"]) == ("node_id=n-1", "u-op")


async def test_another_node_is_a_404_embedded_and_a_409_with_its_url_in_a_cluster(
    db: Database, aiohttp_client: ClientFactory
) -> None:
    drainer = Drainer()
    embedded = await aiohttp_client(drain_app(db, EmbeddedNodes("n-1"), drainer))
    clustered = await aiohttp_client(drain_app(db, TwoNodes(), drainer))

    assert (await embedded.post("/admin/api/v1/nodes/n-2/drain")).status == 404
    resp = await clustered.post("/admin/api/v1/nodes/n-2/drain")
    assert resp.status == 409
    assert (await resp.json())["url"] == "https://10.0.0.2:8443"
    assert (await clustered.post("/admin/api/v1/nodes/n-9/drain")).status == 404
    assert drainer.calls == 0
    assert await AuditLog(db).page() == []


class UnwritableAudit:
    """An audit log whose store refuses every append."""

    async def append(self, record: object) -> dict[str, Any]:
        raise ConnectionError("the store is gone")


async def test_a_drain_whose_entry_cannot_be_written_fails_and_drains_nothing(
    db: Database, aiohttp_client: ClientFactory
) -> None:
    drainer = Drainer()
    app = drain_app(db, EmbeddedNodes("n-1"), drainer)
    app[AUDIT] = UnwritableAudit()  # type: ignore[assignment]
    client = await aiohttp_client(app)

    resp = await client.post("/admin/api/v1/nodes/n-1/drain")

    assert resp.status == 500
    assert (drainer.calls, drainer.draining) == (0, False)
