"""A resident's WebSocket ends with its token: 4401 once the token is revoked (RFC 7009, a
move-out, a signed-out session) or expires on the node's clock; other sockets stay open.

Each close is awaited as the close frame with a bound (a hang, not a measurement); a socket
that stays open answers ``ping`` with ``pong`` after the other one was closed: the revocation
was heard by then (it is recorded before the revoking request is answered), so a socket it
wrongly covered would have been closed instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from propdev.node import Node
from tests.e2e.conftest import RunningNode, node_settings, running_node
from tests.support.access import MovableClock
from tests.support.oauth_client import login

BOUND = 10.0  # for a close frame or a pong: catches a socket that is never closed or answered
TOKEN_ENDED = 4401


@pytest.fixture
async def clocked(tmp_path: Path) -> AsyncIterator[tuple[RunningNode, MovableClock]]:
    clock = MovableClock()

    def wire(node: Node) -> None:
        node.set_clock(clock)

    async with running_node(node_settings(tmp_path), on_node=wire) as running:
        yield running, clock


async def sign_in(node: RunningNode, username: str) -> dict[str, Any]:
    return await login(
        node.http,
        node.url,
        client_id=node.credentials["mobile_client_id"],
        redirect_uri=node.credentials["redirect_uri"],
        username=username,
        password=node.resident(username)["password"],
    )


@contextlib.asynccontextmanager
async def socket(node: RunningNode, token: str) -> AsyncIterator[aiohttp.ClientWebSocketResponse]:
    async with node.http.ws_connect(f"{node.url}/api/v1/ws", protocols=("bearer", token)) as ws:
        await answers(ws)  # open and attached before the test acts
        yield ws


async def answers(ws: aiohttp.ClientWebSocketResponse) -> None:
    await ws.send_str("ping")
    msg = await asyncio.wait_for(ws.receive(), timeout=BOUND)
    assert (msg.type, msg.data) == (aiohttp.WSMsgType.TEXT, "pong"), msg


async def closed_with(ws: aiohttp.ClientWebSocketResponse) -> tuple[int, str]:
    msg = await asyncio.wait_for(ws.receive(), timeout=BOUND)
    assert msg.type == aiohttp.WSMsgType.CLOSE, msg
    return int(msg.data), str(msg.extra)


async def call(
    node: RunningNode, method: str, path: str, token: str, body: Any = None
) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {token}"}
    if body is not None:
        headers["Content-Type"] = "application/json"
    data = None if body is None else json.dumps(body)
    async with node.http.request(method, node.url + path, data=data, headers=headers) as resp:
        text = await resp.text()
        return resp.status, json.loads(text) if text else None


async def test_an_access_token_revoked_by_rfc7009_closes_its_socket_and_no_other(
    node: RunningNode,
) -> None:
    anna, boris = await sign_in(node, "anna"), await sign_in(node, "boris")
    async with (
        socket(node, anna["access_token"]) as mine,
        socket(node, boris["access_token"]) as theirs,
    ):
        form = {
            "token": anna["access_token"],
            "token_type_hint": "access_token",
            "client_id": node.credentials["mobile_client_id"],
        }
        async with node.http.post(f"{node.url}/oauth/revoke", data=form) as resp:
            assert resp.status == 200, await resp.text()

        assert await closed_with(mine) == (TOKEN_ENDED, "token revoked")
        await answers(theirs)


async def test_a_move_out_closes_the_residents_socket_and_not_the_neighbours(
    node: RunningNode,
) -> None:
    operator = await node.token_for("operator")
    vera, anna = await sign_in(node, "vera"), await sign_in(node, "anna")
    async with (
        socket(node, vera["access_token"]) as hers,
        socket(node, anna["access_token"]) as theirs,
    ):
        vera_id = node.resident("vera")["id"]
        status, _ = await call(
            node, "POST", f"/admin/api/v1/residents/{vera_id}/move-out", operator
        )
        assert status == 200

        assert await closed_with(hers) == (TOKEN_ENDED, "token revoked")
        await answers(theirs)  # the household's owner, in the same apartment: still open


async def test_a_session_deleted_from_another_closes_that_sessions_socket_only(
    node: RunningNode,
) -> None:
    first, second = await sign_in(node, "anna"), await sign_in(node, "anna")
    boris = await sign_in(node, "boris")
    async with (
        socket(node, first["access_token"]) as signed_out,
        socket(node, second["access_token"]) as signing_out,
        socket(node, boris["access_token"]) as neighbour,
    ):
        status, sessions = await call(node, "GET", "/api/v1/me/sessions", second["access_token"])
        assert status == 200 and len(sessions) == 2, sessions
        [other] = [s for s in sessions if not s["current"]]
        path = f"/api/v1/me/sessions/{other['id']}"
        status, _ = await call(node, "DELETE", path, second["access_token"])
        assert status == 204

        assert await closed_with(signed_out) == (TOKEN_ENDED, "token revoked")
        await answers(signing_out)  # the same resident's other session
        await answers(neighbour)


async def test_a_socket_closes_when_its_token_expires_on_the_nodes_clock(
    clocked: tuple[RunningNode, MovableClock],
) -> None:
    node, clock = clocked
    anna = await sign_in(node, "anna")
    async with socket(node, anna["access_token"]) as ws:
        await answers(ws)  # the node's clock as it was: the token is valid
        clock.advance(float(anna["expires_in"]) + 1.0)

        assert await closed_with(ws) == (TOKEN_ENDED, "token expired")
