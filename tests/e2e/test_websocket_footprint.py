"""What an open ``/api/v1/ws`` costs the node in tasks: aiohttp's own and none of ours; and
the drain still closes it from the handler's task with 1012 "service restart"."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import aiohttp

from propdev.pki import client_context, ensure_ca
from tests.e2e.conftest import node_settings, running_node

SOCKETS = 8


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def ping(ws: aiohttp.ClientWebSocketResponse) -> None:
    """A round trip through the handler: it has attached the socket and waits in receive."""
    await ws.send_str("ping")
    assert (await ws.receive(timeout=10)).data == "pong"


async def test_an_open_socket_adds_no_task_of_ours_and_a_drain_closes_it_with_1012(
    tmp_path: Path,
) -> None:
    settings = node_settings(tmp_path, PROPDEV_WS_PER_USER=str(SOCKETS + 1))
    ensure_ca(settings.pki_dir)  # the node's CA, made before the node so the client trusts it
    connector = aiohttp.TCPConnector(ssl=client_context(settings.pki_dir), limit=0)
    # Its own client session: running_node's closes before the node stops (and drains).
    async with aiohttp.ClientSession(connector=connector) as http:
        sockets: list[aiohttp.ClientWebSocketResponse] = []
        async with running_node(settings) as node:
            token = await node.token_for("anna")
            url = f"{node.url}/api/v1/ws"
            first = await http.ws_connect(url, headers=bearer(token))
            await ping(first)  # the session actor is running from here on
            before = asyncio.all_tasks()
            sockets = [await http.ws_connect(url, headers=bearer(token)) for _ in range(SOCKETS)]
            for ws in sockets:
                await ping(ws)
            new = [t for t in asyncio.all_tasks() - before if not t.done()]
            names = sorted(t.get_coro().__qualname__ for t in new)  # type: ignore[union-attr]
            # aiohttp's own two per connection (its read loop, the request it hands the
            # handler), and nothing of ours: no drain watcher, no receive task.
            assert names == sorted(
                ["RequestHandler.start", "RequestHandler._handle_request"] * SOCKETS
            ), names
            closing = [asyncio.create_task(ws.receive(timeout=30)) for ws in [first, *sockets]]
        # Leaving running_node stops the node: on_shutdown drains every socket.
        for ws, receiving in zip([first, *sockets], closing, strict=True):
            msg = await receiving
            assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED), msg
            assert ws.close_code == aiohttp.WSCloseCode.SERVICE_RESTART
            with contextlib.suppress(Exception):
                await ws.close()
