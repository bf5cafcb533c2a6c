"""Guest passes end to end: issued over HTTPS, presented at the keypad, revoked, used up.

Our pass rules, not a vendor's behaviour: the embedded simulator is the vendor; the keypad's
codes come over ``POST /partner/v1/events`` (mTLS, bound token, signed body).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.support.access import AccessNode, access_node

DOOR = "ap-a-entrance"  # anna's (and vera's)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def stamp(moment: datetime) -> str:
    return moment.isoformat()


def pass_body(**overrides: Any) -> dict[str, Any]:
    now = datetime.now(UTC)
    body: dict[str, Any] = {
        "access_point_ids": [DOOR],
        "valid_from": stamp(now),
        "valid_until": stamp(now + timedelta(hours=4)),
        "max_uses": 3,
    }
    body.update(overrides)
    return body


@pytest.fixture
async def site(tmp_path: Path) -> AsyncIterator[AccessNode]:
    async with access_node(tmp_path) as running:
        yield running


async def issue(site: AccessNode, token: str, **overrides: Any) -> dict[str, Any]:
    r = site.running
    async with r.http.post(
        f"{r.url}/api/v1/guest-passes", json=pass_body(**overrides), headers=bearer(token)
    ) as resp:
        assert resp.status == 201, await resp.text()
        body = await resp.json()
        assert resp.headers["Location"] == f"/api/v1/guest-passes/{body['id']}"
        return dict(body)


async def passes_of(site: AccessNode, token: str) -> list[dict[str, Any]]:
    r = site.running
    async with r.http.get(f"{r.url}/api/v1/guest-passes", headers=bearer(token)) as resp:
        assert resp.status == 200
        return list(await resp.json())


async def sim_commands(site: AccessNode) -> list[dict[str, Any]]:
    r = site.running
    async with r.http.get(f"{r.credentials['partner_sim_url']}/sim/v1/commands") as resp:
        return list(await resp.json())


async def test_a_guest_pass_opens_its_door_until_revoked_then_is_denied_at_once(
    site: AccessNode,
) -> None:
    r = site.running
    token = await r.token_for("anna")
    issued = await issue(site, token)
    assert issued["code"].isdigit() and issued["qr"].endswith(issued["code"])

    async with r.http.ws_connect(f"{r.url}/api/v1/ws", headers=bearer(token)) as ws:
        assert await site.partner_posts(DOOR, "pass_presented", code=issued["code"]) == "accepted"
        told = await asyncio.wait_for(ws.receive_json(), timeout=10)
    assert (told["type"], told["access_point_id"], told["pass_id"], told["uses"]) == (
        "pass.used",
        DOOR,
        issued["id"],
        1,
    )
    assert [c["command_id"] for c in [told]] == [c["request_id"] for c in await sim_commands(site)]

    async with r.http.delete(
        f"{r.url}/api/v1/guest-passes/{issued['id']}", headers=bearer(token)
    ) as resp:
        assert resp.status == 204
    await site.partner_posts(DOOR, "pass_presented", code=issued["code"])
    assert len(await sim_commands(site)) == 1  # the revoked code sent nothing

    entries = await site.audit(DOOR)
    assert [(e["actor"], e["decision"], e["reason"]) for e in entries] == [
        (f"pass:{issued['id']}", "granted", ""),
        (f"pass:{issued['id']}", "denied", "pass_revoked"),
    ]
    (listed,) = await passes_of(site, token)
    assert (listed["status"], listed["uses"]) == ("revoked", 1)
    assert "code" not in listed


async def test_a_guest_pass_is_denied_once_used_up_and_every_use_is_audited(
    site: AccessNode,
) -> None:
    token = await site.running.token_for("anna")
    issued = await issue(site, token, max_uses=2)
    for _ in range(3):
        await site.partner_posts(DOOR, "pass_presented", code=issued["code"])
    assert len(await sim_commands(site)) == 2
    assert [(e["decision"], e["reason"]) for e in await site.audit(DOOR)] == [
        ("granted", ""),
        ("granted", ""),
        ("denied", "pass_used_up"),
    ]
    (listed,) = await passes_of(site, token)
    assert (listed["status"], listed["uses"]) == ("used_up", 2)


async def test_a_guest_pass_stops_at_the_end_of_its_window(site: AccessNode) -> None:
    token = await site.running.token_for("anna")
    issued = await issue(site, token)
    site.clock.advance(5 * 3600)  # past valid_until
    await site.partner_posts(DOOR, "pass_presented", code=issued["code"])
    assert await sim_commands(site) == []
    assert [e["reason"] for e in await site.audit(DOOR)] == ["pass_expired"]
    (listed,) = await passes_of(site, token)
    assert listed["status"] == "expired"


async def test_bad_requests_are_clear_problems_and_issue_nothing(site: AccessNode) -> None:
    r = site.running
    token = await r.token_for("vera")
    cases: list[tuple[Any, int, str | None]] = [
        (pass_body(max_uses=0), 422, "max_uses"),
        (pass_body(max_uses=101), 422, "max_uses"),
        (pass_body(valid_from="yesterday"), 422, "valid_from"),
        (pass_body(valid_until=stamp(datetime.now(UTC) + timedelta(days=31))), 422, "valid_until"),
        (pass_body(valid_from=stamp(datetime.now(UTC) - timedelta(days=1))), 422, "valid_from"),
        (pass_body(access_point_ids=[]), 422, "access_point_ids"),
        (pass_body(access_point_ids=[DOOR, "ap-b-entrance"]), 403, "access_point_ids"),
        ([1, 2], 422, "body"),
    ]
    for body, status, field in cases:
        async with r.http.post(
            f"{r.url}/api/v1/guest-passes", json=body, headers=bearer(token)
        ) as resp:
            assert resp.status == status, (body, await resp.text())
            assert resp.content_type == "application/problem+json"
            problem = await resp.json()
            assert problem["status"] == status and problem.get("field") == field, problem
    async with r.http.post(
        f"{r.url}/api/v1/guest-passes",
        data=b"{not json",
        headers={**bearer(token), "Content-Type": "application/json"},
    ) as resp:
        assert resp.status == 400
        assert resp.content_type == "application/problem+json"
    assert await passes_of(site, token) == []


async def test_another_residents_pass_is_not_found_and_keeps_working(site: AccessNode) -> None:
    r = site.running
    anna = await r.token_for("anna")
    boris = await r.token_for("boris")
    issued = await issue(site, anna)
    for method in ("GET", "DELETE"):
        async with r.http.request(
            method, f"{r.url}/api/v1/guest-passes/{issued['id']}", headers=bearer(boris)
        ) as resp:
            assert resp.status == 404
            assert resp.content_type == "application/problem+json"
    assert await passes_of(site, boris) == []
    await site.partner_posts(DOOR, "pass_presented", code=issued["code"])
    assert len(await sim_commands(site)) == 1
