"""Push notifications in a cluster: one push per event, and none when a socket got it.

A resident's events go only to the nodes holding one of their WebSockets (a channel per
resident); the node that publishes an event decides on its push (``push_released`` or
``push_withheld``), knowing from Redis whether any node holds a socket of the resident. The
pushed event here is ``access.failed`` (an open the vendor failed while the app was closed):
the simulator answers every open with an error.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import jwt
import pytest

from tests.cluster.conftest import Cluster, bearer, eventually

pytestmark = pytest.mark.slow


def pushes(cluster: Cluster, user_id: str, kind: str = "push_released") -> list[dict[str, Any]]:
    """Every ``kind`` record for ``user_id`` in the logs of every node."""
    found = []
    for path in sorted(cluster.logs.glob("n*.std*.log")):
        for line in path.read_text(errors="replace").splitlines():
            if f'"{kind}"' not in line:
                continue
            record = json.loads(line)
            if record.get("event") == kind and record.get("user_id") == user_id:
                found.append(record)
    return found


def pushed(cluster: Cluster, user_id: str, n: int) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return len(pushes(cluster, user_id)) >= n

    return check


async def test_one_push_per_event_and_none_for_an_event_a_socket_received(
    cluster: Cluster,
) -> None:
    anna = cluster.resident("anna")
    door = anna["access_point_ids"][0]
    a, b, c = cluster.nodes
    token = await cluster.token("anna")
    user_id = jwt.decode(token, options={"verify_signature": False})["sub"]
    channel = f"{cluster.namespace}:to:user:{user_id}"
    await cluster.set_faults("error")  # every open fails at the vendor: access.failed

    # The app is closed: each open is pushed once, by one node, whichever node took it.
    for n, node in enumerate((b, c), start=1):
        status, body = await cluster.open(node, "anna", door)
        assert status in (502, 503), body
        await eventually(pushed(cluster, user_id, n), within=10, what=f"push {n}")
    assert len(pushes(cluster, user_id)) == 2

    # The app is open on a: the event reaches the socket and is not pushed.
    async with cluster.http.ws_connect(f"{a.url}/api/v1/ws", headers=bearer(token)) as ws:
        await ws.send_str("ping")
        assert (await ws.receive(timeout=5)).data == "pong"
        assert dict(await cluster.redis.pubsub_numsub(channel))[channel.encode()] == 1
        status, body = await cluster.open(c, "anna", door)
        assert status in (502, 503), body
        msg = await ws.receive(timeout=5)
        assert msg.type == aiohttp.WSMsgType.TEXT
        assert json.loads(msg.data)["type"] == "access.failed"

    async def nobody_listens() -> bool:
        counts = dict(await cluster.redis.pubsub_numsub(channel))
        return counts[channel.encode()] == 0

    await eventually(nobody_listens, within=5, what="node a stops listening")
    # The next open is pushed; the door's owner takes its events in order, so once this push
    # is logged the socket-received one was decided before it: not pushed.
    status, body = await cluster.open(b, "anna", door)
    assert status in (502, 503), body
    await eventually(pushed(cluster, user_id, 3), within=10, what="push 3")
    assert len(pushes(cluster, user_id)) == 3
    assert len(pushes(cluster, user_id, "push_withheld")) == 1
