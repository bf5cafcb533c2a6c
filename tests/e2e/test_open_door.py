"""What the app does: log in, list doors, open one, see it live and in history."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from propdev.node import Node
from tests.e2e.conftest import RunningNode, node_settings, running_node


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def sim_commands(node: RunningNode) -> list[dict[str, object]]:
    async with node.http.get(f"{node.credentials['partner_sim_url']}/sim/v1/commands") as resp:
        assert resp.status == 200
        return list(await resp.json())


async def test_a_resident_opens_a_permitted_door_and_sees_it_live_and_in_history(
    node: RunningNode,
) -> None:
    token = await node.token_for("anna")
    anna = node.resident("anna")
    door = anna["access_point_ids"][0]

    async with node.http.get(f"{node.url}/api/v1/access-points", headers=bearer(token)) as resp:
        assert resp.status == 200
        points = await resp.json()
    assert sorted(p["id"] for p in points) == sorted(anna["access_point_ids"])
    assert {"id", "name", "kind", "site_id", "online"} <= set(points[0])

    async with node.http.ws_connect(f"{node.url}/api/v1/ws", headers=bearer(token)) as ws:
        async with node.http.post(
            f"{node.url}/api/v1/access-points/{door}/open", headers=bearer(token)
        ) as resp:
            assert resp.status == 200, await resp.text()
            body = await resp.json()
        assert body["status"] == "granted" and body["access_point_id"] == door
        pushed = await asyncio.wait_for(ws.receive_json(), timeout=10)
        assert pushed["type"] == "access.granted"
        assert pushed["access_point_id"] == door
        assert pushed["command_id"] == body["command_id"]

    received = await sim_commands(node)
    assert [c["request_id"] for c in received] == [body["command_id"]]
    device = next(a for a in node.credentials["access_points"] if a["id"] == door)
    assert received[0]["device_id"] == device["device_id"] and received[0]["command"] == "open"

    async with node.http.get(f"{node.url}/api/v1/events", headers=bearer(token)) as resp:
        events = await resp.json()
    assert [e["id"] for e in events if e["command_id"] == body["command_id"]] == [pushed["id"]]

    async with node.http.get(
        f"{node.url}/api/v1/commands/{body['command_id']}", headers=bearer(token)
    ) as resp:
        assert (await resp.json())["status"] == "confirmed"


async def test_a_forbidden_door_is_a_403_problem_audited_and_never_sent(
    node: RunningNode,
) -> None:
    token = await node.token_for("vera")
    forbidden = "ap-b-entrance"
    assert forbidden not in node.resident("vera")["access_point_ids"]
    async with node.http.post(
        f"{node.url}/api/v1/access-points/{forbidden}/open", headers=bearer(token)
    ) as resp:
        assert resp.status == 403
        assert resp.content_type == "application/problem+json"
        problem = await resp.json()
    assert {"type", "title", "status", "detail"} <= set(problem) and problem["status"] == 403
    assert await sim_commands(node) == []

    operator = await node.token_for("operator")
    async with node.http.get(
        f"{node.url}/admin/api/v1/audit",
        params={"access_point_id": forbidden},
        headers=bearer(operator),
    ) as resp:
        assert resp.status == 200
        entries = (await resp.json())["entries"]
    assert [(e["decision"], e["reason"]) for e in entries] == [("denied", "no_right")]


async def test_the_same_idempotency_key_twice_replays_the_first_answer_and_sends_one_command(
    tmp_path: Path,
) -> None:
    # What the vendor is asked, duplicates included (its own replay would hide a second ask).
    asked: list[str] = []

    def spy_on_the_vendor(started: Node) -> None:
        sim = started.simulator
        assert sim is not None
        vendor_open = sim.open

        async def open_(device_id: str, request_id: str, *args: Any, **kwargs: Any) -> Any:
            asked.append(request_id)
            return await vendor_open(device_id, request_id, *args, **kwargs)

        sim.open = open_  # type: ignore[method-assign]

    async with running_node(node_settings(tmp_path), on_node=spy_on_the_vendor) as node:
        token = await node.token_for("boris")
        door = node.resident("boris")["access_point_ids"][0]
        headers = {**bearer(token), "Idempotency-Key": "tap-123"}
        answers, replayed = [], []
        for _ in range(2):
            async with node.http.post(
                f"{node.url}/api/v1/access-points/{door}/open", headers=headers
            ) as resp:
                assert resp.status == 200, await resp.text()
                answers.append(await resp.json())
                replayed.append(resp.headers.get("Idempotent-Replayed"))
        assert answers[0] == answers[1]
        assert replayed == [None, "true"]  # the second is the stored answer
        command_id = answers[0]["command_id"]
        assert asked == [command_id]  # the vendor was asked once
        assert [c["request_id"] for c in await sim_commands(node)] == [command_id]

        operator = await node.token_for("operator")
        async with node.http.get(
            f"{node.url}/admin/api/v1/audit",
            params={"access_point_id": door},
            headers=bearer(operator),
        ) as resp:
            entries = (await resp.json())["entries"]
        assert [(e["action"], e["command_id"]) for e in entries] == [("open", command_id)]
        async with node.http.get(f"{node.url}/api/v1/events", headers=bearer(token)) as resp:
            events = await resp.json()
        assert [e["type"] for e in events if e["command_id"] == command_id] == ["access.granted"]


async def test_an_unknown_access_point_is_404_and_no_token_is_401(node: RunningNode) -> None:
    token = await node.token_for("anna")
    async with node.http.post(
        f"{node.url}/api/v1/access-points/nope/open", headers=bearer(token)
    ) as resp:
        assert resp.status == 404
    async with node.http.get(f"{node.url}/api/v1/access-points") as resp:
        assert resp.status == 401
        assert resp.headers["WWW-Authenticate"].startswith("Bearer")
        assert json.loads(await resp.text())["status"] == 401


async def test_a_resident_cannot_use_the_admin_api(node: RunningNode) -> None:
    token = await node.token_for("anna")
    async with node.http.get(f"{node.url}/admin/api/v1/actors", headers=bearer(token)) as resp:
        assert resp.status == 403


async def test_a_websocket_reconnecting_with_after_replays_what_it_missed(
    node: RunningNode,
) -> None:
    token = await node.token_for("anna")
    door = node.resident("anna")["access_point_ids"][0]
    opened = []
    for _ in range(3):
        async with node.http.post(
            f"{node.url}/api/v1/access-points/{door}/open", headers=bearer(token)
        ) as resp:
            opened.append((await resp.json())["command_id"])
    async with node.http.get(f"{node.url}/api/v1/events", headers=bearer(token)) as resp:
        first = (await resp.json())[0]["id"]
    async with node.http.ws_connect(
        f"{node.url}/api/v1/ws?after={first}", protocols=("bearer", token)
    ) as ws:
        replayed = [await asyncio.wait_for(ws.receive_json(), timeout=10) for _ in range(2)]
    assert [e["command_id"] for e in replayed] == opened[1:]
