"""Households over HTTPS: an owner invites a member, who activates, gets the owner's doors and
issues guest passes of their own; members cannot invite; removing a member ends their access
at once."""

from __future__ import annotations

import time
from typing import Any

from tests.e2e.conftest import RunningNode
from tests.e2e.test_guest_passes import bearer, pass_body
from tests.support.eventually import eventually
from tests.support.oauth_client import login

MEMBERS = "/api/v1/household/members"


async def call(r: RunningNode, method: str, path: str, token: str, body: Any = None) -> Any:
    async with r.http.request(method, f"{r.url}{path}", json=body, headers=bearer(token)) as resp:
        return resp.status, (await resp.json() if resp.content_type.endswith("json") else None)


async def doors(r: RunningNode, token: str) -> set[str]:
    status, points = await call(r, "GET", "/api/v1/access-points", token)
    assert status == 200
    return {p["id"] for p in points}


async def test_an_owner_invites_a_member_who_gets_the_doors_and_is_removed_at_once(
    node: RunningNode,
) -> None:
    r = node
    anna = await r.token_for("anna")
    status, invited = await call(
        r, "POST", MEMBERS, anna, {"full_name": "Kira Smirnova", "phone": "+79990000009"}
    )
    assert status == 201, invited
    assert set(invited) == {"id", "username", "activation_code"}
    password = "kira-correct-horse-battery"
    async with r.http.post(
        f"{r.url}/api/v1/activation",
        json={
            "username": invited["username"],
            "activation_code": invited["activation_code"],
            "password": password,
        },
    ) as resp:
        assert (resp.status, await resp.json()) == (200, {})
    tokens = await login(
        r.http,
        r.url,
        client_id=r.credentials["mobile_client_id"],
        redirect_uri=r.credentials["redirect_uri"],
        username=invited["username"],
        password=password,
    )
    kira = str(tokens["access_token"])
    assert (
        await doors(r, kira) == await doors(r, anna) == set(r.resident("anna")["access_point_ids"])
    )

    status, listed = await call(r, "GET", MEMBERS, anna)
    assert status == 200
    assert {m["id"] for m in listed} == {invited["id"], r.resident("vera")["id"]}

    # A member's guest pass is the member's.
    status, issued = await call(r, "POST", "/api/v1/guest-passes", kira, pass_body())
    assert status == 201, issued
    status, mine = await call(r, "GET", "/api/v1/guest-passes", kira)
    assert [p["id"] for p in mine] == [issued["id"]]
    status, annas = await call(r, "GET", "/api/v1/guest-passes", anna)
    assert issued["id"] not in {p["id"] for p in annas}

    # Members cannot invite, nor remove.
    status, problem = await call(r, "POST", MEMBERS, kira, {"full_name": "Someone"})
    assert status == 403, problem
    vera = await r.token_for("vera")
    assert (await call(r, "POST", MEMBERS, vera, {"full_name": "Someone"}))[0] == 403
    assert (await call(r, "DELETE", f"{MEMBERS}/{invited['id']}", vera))[0] == 403
    # Not a member of this household: not found.
    boris_id = r.resident("boris")["id"]
    assert (await call(r, "DELETE", f"{MEMBERS}/{boris_id}", anna))[0] == 404
    status, problem = await call(r, "POST", MEMBERS, anna, {"full_name": "X", "age": 3})
    assert status == 422 and problem["field"] == "age"
    status, problem = await call(r, "POST", MEMBERS, anna, {"full_name": "X", "phone": None})
    assert status == 422 and problem["field"] == "phone"  # null is not a phone (schemathesis)

    status, _ = await call(r, "DELETE", f"{MEMBERS}/{invited['id']}", anna)
    assert status == 204
    removed = time.monotonic()

    async def refused() -> bool:
        return (await call(r, "GET", "/api/v1/access-points", kira))[0] == 401

    await eventually(refused, within=1.0, what="the removed member's token refused")
    assert time.monotonic() - removed < 1.0
    assert await doors(r, anna) == set(r.resident("anna")["access_point_ids"])  # hers stay
    assert (await call(r, "DELETE", f"{MEMBERS}/{invited['id']}", anna))[0] == 404
