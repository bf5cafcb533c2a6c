"""Operators: the supervision tree through the admin API, restarting an actor, the audit log."""

from __future__ import annotations

from typing import Any

from tests.e2e.conftest import RunningNode
from tests.e2e.test_open_door import bearer


def actors_of(tree: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found = {a["id"]: a for a in tree.get("actors", [])}
    for sup in tree.get("supervisors", []):
        found.update(actors_of(sup))
    return found


async def test_an_operator_sees_the_tree_grow_after_an_open_and_restarts_an_actor(
    node: RunningNode,
) -> None:
    operator = bearer(await node.token_for("operator"))
    resident = bearer(await node.token_for("anna"))
    door = node.resident("anna")["access_point_ids"][0]
    actor_id = f"device:{door}"

    async with node.http.get(f"{node.url}/admin/api/v1/actors", headers=operator) as resp:
        assert resp.status == 200
        before = await resp.json()
    assert actor_id not in actors_of(before)
    assert {s["id"] for s in before["supervisors"]} == {"device", "session"}

    async with node.http.post(
        f"{node.url}/api/v1/access-points/{door}/open", headers=resident
    ) as resp:
        assert resp.status == 200

    async with node.http.get(f"{node.url}/admin/api/v1/actors", headers=operator) as resp:
        after = actors_of(await resp.json())
    assert after[actor_id]["restarts"] == 0
    assert {"state", "mailbox_depth"} <= set(after[actor_id])

    async with node.http.post(
        f"{node.url}/admin/api/v1/actors/{actor_id}/restart", headers=operator
    ) as resp:
        assert resp.status == 200
    async with node.http.get(f"{node.url}/admin/api/v1/actors", headers=operator) as resp:
        assert actors_of(await resp.json())[actor_id]["restarts"] == 1

    # The restarted actor serves the next open, with its state (the count of opens) kept.
    async with node.http.post(
        f"{node.url}/api/v1/access-points/{door}/open", headers=resident
    ) as resp:
        assert resp.status == 200
    async with node.http.get(f"{node.url}/api/v1/access-points/{door}", headers=resident) as resp:
        assert (await resp.json())["opens"] == 2

    async with node.http.post(
        f"{node.url}/admin/api/v1/actors/device:nothing-here/restart", headers=operator
    ) as resp:
        assert resp.status == 404


async def test_the_audit_log_pages_in_append_order_with_a_chained_hash(node: RunningNode) -> None:
    operator = bearer(await node.token_for("operator"))
    resident = bearer(await node.token_for("boris"))
    door = node.resident("boris")["access_point_ids"][0]
    for _ in range(3):
        async with node.http.post(
            f"{node.url}/api/v1/access-points/{door}/open", headers=resident
        ) as resp:
            assert resp.status == 200
    async with node.http.get(
        f"{node.url}/admin/api/v1/audit", params={"limit": "2", "action": "open"}, headers=operator
    ) as resp:
        page = await resp.json()
    assert len(page["entries"]) == 2 and page["next"] == page["entries"][-1]["id"]
    async with node.http.get(
        f"{node.url}/admin/api/v1/audit",
        params={"after": str(page["next"]), "action": "open"},  # the sign-ins came before
        headers=operator,
    ) as resp:
        rest = await resp.json()
    assert rest["next"] is None and len(rest["entries"]) == 1
    entries = page["entries"] + rest["entries"]
    assert all(e["decision"] == "granted" and e["access_point_id"] == door for e in entries)
    assert [e["prev_hash"] for e in entries[1:]] == [e["hash"] for e in entries[:-1]]
    assert {"id", "at", "actor", "action", "reason"} <= set(entries[0])


async def test_an_operator_token_is_refused_on_the_resident_open_route(node: RunningNode) -> None:
    operator = bearer(await node.token_for("operator"))
    async with node.http.post(
        f"{node.url}/api/v1/access-points/ap-a-entrance/open", headers=operator
    ) as resp:
        assert resp.status == 403


async def test_a_manual_open_is_one_audit_entry_naming_the_operator_and_the_reason(
    node: RunningNode,
) -> None:
    operator = bearer(await node.token_for("operator"))
    door = "ap-b-courtyard"
    async with node.http.post(
        f"{node.url}/admin/api/v1/access-points/{door}/open",
        json={"reason": "courier stuck at the gate"},
        headers=operator,
    ) as resp:
        assert resp.status == 200, await resp.text()
        command_id = (await resp.json())["command_id"]
    async with node.http.get(
        f"{node.url}/admin/api/v1/audit", params={"access_point_id": door}, headers=operator
    ) as resp:
        entries = (await resp.json())["entries"]
    assert [(e["action"], e["decision"], e["reason"], e["command_id"]) for e in entries] == [
        ("manual_open", "granted", "courier stuck at the gate", command_id)
    ]
    assert entries[0]["actor"].startswith("operator:")
