"""Three real nodes against the machine's Redis and PostgreSQL (see conftest)."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import pytest

from tests.cluster.conftest import Cluster, Node, bearer

pytestmark = pytest.mark.slow


async def test_an_open_through_any_node_reaches_the_doors_one_owner(cluster: Cluster) -> None:
    anna = cluster.resident("anna")
    door = anna["access_point_ids"][0]
    owner = await cluster.owner_of(door)
    assert owner in {"n1", "n2", "n3"}

    answers = [await cluster.open(node, "anna", door) for node in cluster.nodes]

    assert [status for status, _ in answers] == [200, 200, 200], answers
    commands = await cluster.sim_commands()
    assert sorted(c["request_id"] for c in commands) == sorted(b["command_id"] for _, b in answers)
    # Only the owner's device actor is active; the other two nodes forwarded.
    for node in cluster.nodes:
        snapshot = await nodes_view(cluster, node)
        if node.name == owner:
            assert snapshot["stats"]["local"] >= 1 and snapshot["stats"]["served"] == 2
        else:
            assert snapshot["stats"]["forwarded"] == 1 and snapshot["stats"]["local"] == 0


async def nodes_view(cluster: Cluster, node: Node) -> dict[str, Any]:
    operator = cluster.creds["operator"]
    if "operator" not in cluster.tokens:
        from tests.support.oauth_client import login

        tokens = await login(
            cluster.http,
            cluster.nodes[0].url,
            client_id=cluster.creds["mobile_client_id"],
            redirect_uri=cluster.creds["redirect_uri"],
            username=operator["username"],
            password=operator["password"],
            totp_secret=operator["totp_secret"],
        )
        cluster.tokens["operator"] = str(tokens["access_token"])
    url = node.url
    async with cluster.http.get(
        f"{url}/admin/api/v1/nodes", headers=bearer(cluster.tokens["operator"])
    ) as resp:
        assert resp.status == 200, await resp.text()
        return dict(await resp.json())


async def test_a_websocket_on_one_node_gets_the_event_of_an_open_through_another(
    cluster: Cluster,
) -> None:
    anna = cluster.resident("anna")
    door = anna["access_point_ids"][0]
    a, c = cluster.nodes[0], cluster.nodes[2]
    token = await cluster.token("anna")
    async with cluster.http.ws_connect(f"{a.url}/api/v1/ws", headers=bearer(token)) as ws:
        # The socket is attached once a ping is answered.
        await ws.send_str("ping")
        assert (await ws.receive(timeout=5)).data == "pong"
        status, body = await cluster.open(c, "anna", door)
        assert status == 200, body
        msg = await ws.receive(timeout=5)
        assert msg.type == aiohttp.WSMsgType.TEXT
        event = json.loads(msg.data)
        assert event["type"] == "access.granted"
        assert event["command_id"] == body["command_id"]
