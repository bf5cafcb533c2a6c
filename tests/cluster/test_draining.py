"""SIGTERM drains a node: its WebSockets close with 1012 "service restart" (reconnect)."""

from __future__ import annotations

import signal

import aiohttp
import pytest

from tests.cluster.conftest import Cluster, bearer

pytestmark = pytest.mark.slow


async def test_sigterm_closes_websockets_with_a_reconnect_hint_before_stopping(
    cluster: Cluster,
) -> None:
    node = cluster.node("n2")
    token = await cluster.token("anna")
    async with cluster.http.ws_connect(f"{node.url}/api/v1/ws", headers=bearer(token)) as ws:
        await ws.send_str("ping")
        assert (await ws.receive(timeout=10)).data == "pong"
        assert node.process is not None
        node.process.proc.send_signal(signal.SIGTERM)
        msg = await ws.receive(timeout=30)
    assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED), msg
    assert ws.close_code == aiohttp.WSCloseCode.SERVICE_RESTART  # 1012
    # The client reconnects to another node.
    async with cluster.http.ws_connect(
        f"{cluster.nodes[0].url}/api/v1/ws", headers=bearer(token)
    ) as again:
        await again.send_str("ping")
        assert (await again.receive(timeout=10)).data == "pong"
