"""A revocation made through node A closes, with 4401, the resident's WebSocket held on node B
(B hears it on the bus's ``revoked:`` channel), and not another resident's socket on B."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from tests.cluster.conftest import Cluster
from tests.support.oauth_client import login

pytestmark = pytest.mark.slow

BOUND = 10.0  # for the close frame or a pong: catches one that never comes


async def _answers(ws: aiohttp.ClientWebSocketResponse) -> None:
    await ws.send_str("ping")
    msg = await asyncio.wait_for(ws.receive(), timeout=BOUND)
    assert (msg.type, msg.data) == (aiohttp.WSMsgType.TEXT, "pong"), msg


async def test_an_access_token_revoked_through_one_node_closes_its_socket_on_another(
    cluster: Cluster,
) -> None:
    a, b = cluster.nodes[0], cluster.nodes[1]
    anna = cluster.resident("anna")
    tokens = await login(
        cluster.http,
        a.url,
        client_id=cluster.creds["mobile_client_id"],
        redirect_uri=cluster.creds["redirect_uri"],
        username="anna",
        password=anna["password"],
    )
    access = str(tokens["access_token"])
    boris = await cluster.token("boris")
    async with (
        cluster.http.ws_connect(f"{b.url}/api/v1/ws", protocols=("bearer", access)) as hers,
        cluster.http.ws_connect(f"{b.url}/api/v1/ws", protocols=("bearer", boris)) as his,
    ):
        await _answers(hers)
        await _answers(his)
        async with cluster.http.post(
            f"{a.url}/oauth/revoke",
            data={
                "token": access,
                "token_type_hint": "access_token",
                "client_id": cluster.creds["mobile_client_id"],
            },
        ) as resp:
            assert resp.status == 200, await resp.text()

        msg = await asyncio.wait_for(hers.receive(), timeout=BOUND)
        assert (msg.type, msg.data, msg.extra) == (aiohttp.WSMsgType.CLOSE, 4401, "token revoked")
        await _answers(his)
