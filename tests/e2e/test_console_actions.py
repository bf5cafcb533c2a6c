"""The console's operator actions over HTTPS: revoking anyone's guest pass (then denied at the
keypad) and draining the node (no new door work, ``/readyz`` false); both audited.

Our console's actions, not a vendor's behaviour: the embedded simulator is the vendor; the
keypad's codes come over ``POST /partner/v1/events`` as the partner sends them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import RunningNode
from tests.e2e.test_guest_passes import DOOR, bearer, issue, passes_of, sim_commands
from tests.support.access import AccessNode, access_node


@pytest.fixture
async def site(tmp_path: Path) -> AsyncIterator[AccessNode]:
    async with access_node(tmp_path) as running:
        yield running


async def audit_of(r: RunningNode, operator: dict[str, str], action: str) -> list[dict[str, Any]]:
    async with r.http.get(
        f"{r.url}/admin/api/v1/audit", params={"limit": "1000"}, headers=operator
    ) as resp:
        assert resp.status == 200
        return [e for e in (await resp.json())["entries"] if e["action"] == action]


async def test_an_operator_revokes_a_residents_pass_and_the_code_is_then_denied(
    site: AccessNode,
) -> None:
    r = site.running
    anna = await r.token_for("anna")
    operator = bearer(await r.token_for("operator"))
    operator_id = r.credentials["operator"]["id"]
    issued = await issue(site, anna)
    spent = await issue(site, anna, max_uses=1)
    assert await site.partner_posts(DOOR, "pass_presented", code=spent["code"]) == "accepted"

    async with r.http.get(f"{r.url}/admin/api/v1/guest-passes", headers=operator) as resp:
        assert resp.status == 200
        listed = await resp.json()
    assert [p["id"] for p in listed] == [spent["id"], issued["id"]]  # newest first
    assert all("code" not in p and "qr" not in p for p in listed)
    anna_id = listed[0]["owner_id"]
    async with r.http.get(
        f"{r.url}/admin/api/v1/guest-passes",
        params={"owner": anna_id, "active": "true"},
        headers=operator,
    ) as resp:
        assert [p["id"] for p in await resp.json()] == [issued["id"]]
    async with r.http.get(
        f"{r.url}/admin/api/v1/guest-passes", params={"active": "false"}, headers=operator
    ) as resp:
        assert [(p["id"], p["status"]) for p in await resp.json()] == [(spent["id"], "used_up")]
    async with r.http.get(
        f"{r.url}/admin/api/v1/guest-passes", params={"active": "maybe"}, headers=operator
    ) as resp:
        assert resp.status == 400

    for _ in range(2):  # the second revoke changes nothing and adds no audit entry
        async with r.http.delete(
            f"{r.url}/admin/api/v1/guest-passes/{issued['id']}", headers=operator
        ) as resp:
            assert resp.status == 204
    assert await site.partner_posts(DOOR, "pass_presented", code=issued["code"]) == "accepted"
    assert len(await sim_commands(site)) == 1  # only the spent pass's use ever opened
    presented = await audit_of(r, operator, "open")  # the desk's audit of a presentation
    assert [(e["actor"], e["decision"], e["reason"]) for e in presented][-1] == (
        f"pass:{issued['id']}",
        "denied",
        "pass_revoked",
    )
    (entry,) = await audit_of(r, operator, "guest_pass.revoke")
    assert entry["actor"] == f"operator:{operator_id}"
    assert entry["reason"] == f"pass_id={issued['id']} owner_id={anna_id}"
    mine = {p["id"]: p["status"] for p in await passes_of(site, anna)}
    assert mine[issued["id"]] == "revoked"

    async with r.http.delete(
        f"{r.url}/admin/api/v1/guest-passes/no-such-pass", headers=operator
    ) as resp:
        assert resp.status == 404
        assert resp.content_type == "application/problem+json"
    async with r.http.delete(
        f"{r.url}/admin/api/v1/guest-passes/{spent['id']}", headers=bearer(anna)
    ) as resp:
        assert resp.status == 403  # a resident's token: not an operator's route


async def test_draining_the_node_stops_door_work_turns_readyz_false_and_is_audited(
    node: RunningNode,
) -> None:
    operator = bearer(await node.token_for("operator"))
    anna = bearer(await node.token_for("anna"))
    door = node.resident("anna")["access_point_ids"][0]
    async with node.http.post(f"{node.url}/api/v1/access-points/{door}/open", headers=anna) as resp:
        assert resp.status == 200
    async with node.http.get(f"{node.url}/admin/api/v1/breakers", headers=operator) as resp:
        (breaker,) = [b for b in (await resp.json())["breakers"] if b["partner_id"] == "simulator"]
    assert breaker["latency"]["samples"] >= 1
    assert 0 <= breaker["latency"]["p50_ms"] <= breaker["latency"]["p95_ms"]

    async with node.http.post(
        f"{node.url}/admin/api/v1/nodes/another-node/drain", headers=operator
    ) as resp:
        assert resp.status == 404
    async with node.http.post(
        f"{node.url}/admin/api/v1/nodes/test-node/drain", headers=anna
    ) as resp:
        assert resp.status == 403
    async with node.http.get(f"{node.url}/readyz") as resp:
        assert resp.status == 200 and (await resp.json())["draining"] is False

    async with node.http.post(
        f"{node.url}/admin/api/v1/nodes/test-node/drain", headers=operator
    ) as resp:
        assert resp.status == 200
        drained = await resp.json()
    assert drained["draining"] is True and drained["already"] is False
    assert drained["actors_passivated"] >= 1  # the door's actor, its state saved

    async with node.http.get(f"{node.url}/readyz") as resp:
        assert resp.status == 503
        ready = await resp.json()
    assert ready["draining"] is True and ready["checks"]["accepting"] is False
    async with node.http.get(f"{node.url}/admin/api/v1/actors", headers=operator) as resp:
        tree = await resp.json()
    device = next(s for s in tree["supervisors"] if s["id"] == "device")
    assert device.get("actors", []) == []
    async with node.http.post(f"{node.url}/api/v1/access-points/{door}/open", headers=anna) as resp:
        assert resp.status == 503
        assert resp.headers["Retry-After"] == "1"
        assert resp.content_type == "application/problem+json"

    async with node.http.post(
        f"{node.url}/admin/api/v1/nodes/test-node/drain", headers=operator
    ) as resp:
        assert resp.status == 200 and (await resp.json())["already"] is True
    (entry,) = await audit_of(node, operator, "node.drain")
    assert entry["actor"] == f"operator:{node.credentials['operator']['id']}"
    assert entry["reason"] == "node_id=test-node"  # written before the drain: no counts yet
