"""Every response of the main flows (login, list, open 200/403/404, events, commands, admin,
errors) has a documented status and media type, and a body inside the documented schema."""

from __future__ import annotations

from typing import Any

import pytest

from tests.contract.contract import Contract
from tests.e2e.conftest import RunningNode
from tests.e2e.test_open_door import bearer

pytestmark = pytest.mark.slow


class Observer:
    """Makes calls to the node and checks each answer against the contract."""

    def __init__(self, node: RunningNode, contract: Contract) -> None:
        self.node = node
        self.contract = contract

    async def call(
        self,
        method: str,
        path: str,
        *,
        token: str | None = None,
        expect: int,
        **kwargs: Any,
    ) -> Any:
        headers = dict(kwargs.pop("headers", {}))
        if token is not None:
            headers.update(bearer(token))
        async with self.node.http.request(
            method, self.node.url + path, headers=headers, allow_redirects=False, **kwargs
        ) as resp:
            raw = await resp.read()
            body: Any = raw.decode("utf-8", "replace")
            if resp.content_type.endswith("json"):
                body = await resp.json(content_type=None)
            assert resp.status == expect, (method, path, resp.status, body)
            self.contract.check(method, path, resp.status, resp.content_type, body)
            return body


async def test_the_main_flows_answer_inside_the_document(node: RunningNode) -> None:
    async with node.http.get(f"{node.url}/openapi.json") as resp:
        contract = Contract(await resp.json())
    o = Observer(node, contract)
    anna = await node.token_for("anna")
    vera = await node.token_for("vera")
    operator = await node.token_for("operator")
    mine = node.resident("anna")["access_point_ids"][0]
    forbidden = next(
        ap["id"]
        for ap in node.credentials["access_points"]
        if ap["id"] not in node.resident("vera")["access_point_ids"]
    )

    # operations and documentation
    await o.call("GET", "/healthz", expect=200)
    await o.call("GET", "/readyz", expect=200)
    await o.call("GET", "/openapi.json", expect=200)
    await o.call("GET", "/docs", expect=200)
    await o.call("GET", "/docs/swagger-ui-bundle.js", expect=200)
    await o.call("GET", "/docs/nothing.js", expect=404)
    await o.call("GET", "/admin/", expect=200)
    await o.call("GET", "/admin/static/console.js", expect=200)
    await o.call("GET", "/admin", expect=301)
    await o.call("GET", "/app/", expect=200)
    await o.call("GET", "/app/static/app.js", expect=200)
    await o.call("GET", "/app/static/nothing.js", expect=404)
    await o.call("GET", "/app", expect=301)

    # OAuth / OIDC
    await o.call("GET", "/.well-known/openid-configuration", expect=200)
    await o.call("GET", "/oauth/jwks", expect=200)
    await o.call("GET", "/oauth/userinfo", token=anna, expect=200)
    await o.call("GET", "/oauth/userinfo", expect=401)
    await o.call(
        "POST",
        "/oauth/token",
        data={"grant_type": "refresh_token", "refresh_token": "nope", "client_id": "x"},
        expect=400,
    )

    # resident API
    await o.call("GET", "/api/v1/me", token=anna, expect=200)
    await o.call("GET", "/api/v1/access-points", token=anna, expect=200)
    granted = await o.call("POST", f"/api/v1/access-points/{mine}/open", token=anna, expect=200)
    await o.call(
        "POST",
        f"/api/v1/access-points/{mine}/open",
        token=anna,
        headers={"Idempotency-Key": "contract-1"},
        expect=200,
    )
    await o.call("POST", f"/api/v1/access-points/{forbidden}/open", token=vera, expect=403)
    await o.call("POST", "/api/v1/access-points/nowhere/open", token=anna, expect=404)
    await o.call("GET", f"/api/v1/access-points/{mine}", token=anna, expect=200)
    await o.call("GET", "/api/v1/access-points/nowhere", token=anna, expect=404)
    await o.call("GET", "/api/v1/events", token=anna, params={"limit": "10"}, expect=200)
    await o.call("GET", "/api/v1/events", token=anna, params={"limit": "x"}, expect=400)
    await o.call("GET", f"/api/v1/commands/{granted['command_id']}", token=anna, expect=200)
    await o.call("GET", f"/api/v1/commands/{granted['command_id']}", token=vera, expect=404)
    await o.call("GET", "/api/v1/me", expect=401)
    await o.call("GET", "/api/v1/me", token="not-a-jwt", expect=401)
    await o.call("GET", "/api/v1/ws", token=anna, expect=400)  # not an upgrade

    # push tokens
    device = {"platform": "apns", "token": "ab" * 32}
    created = await o.call("POST", "/api/v1/me/push-tokens", token=anna, json=device, expect=201)
    bad = {"platform": "apns", "token": "ab"}
    await o.call("POST", "/api/v1/me/push-tokens", token=anna, json=bad, expect=400)
    await o.call("GET", "/api/v1/me/push-tokens", token=anna, expect=200)
    gone = f"/api/v1/me/push-tokens/{created['id']}"
    await o.call("DELETE", gone, token=vera, expect=404)
    await o.call("DELETE", gone, token=anna, expect=204)

    # operators
    await o.call("GET", "/admin/api/v1/actors", token=operator, expect=200)
    await o.call("GET", "/admin/api/v1/actors", token=anna, expect=403)
    await o.call("POST", f"/admin/api/v1/actors/device:{mine}/restart", token=operator, expect=200)
    await o.call("POST", "/admin/api/v1/actors/device:none/restart", token=operator, expect=404)
    await o.call("GET", "/admin/api/v1/audit", token=operator, expect=200)
    await o.call(
        "GET",
        "/admin/api/v1/audit",
        token=operator,
        params={"access_point_id": mine, "limit": "5"},
        expect=200,
    )
    await o.call(
        "GET",
        "/admin/api/v1/audit",
        token=operator,
        params={"action": "auth.", "actor": f"user:{node.resident('anna')['id']}"},
        expect=200,
    )
    await o.call(
        "GET", "/admin/api/v1/audit", token=operator, params={"action": "Not One"}, expect=400
    )
    await o.call("GET", "/admin/api/v1/audit/checkpoint", token=operator, expect=200)
    await o.call("GET", "/admin/api/v1/audit/checkpoint", token=anna, expect=403)
    await o.call("GET", "/admin/api/v1/breakers", token=operator, expect=200)
    await o.call("GET", "/admin/api/v1/nodes", token=operator, expect=200)
    await o.call(
        "POST",
        f"/admin/api/v1/access-points/{mine}/open",
        token=operator,
        json={"reason": "contract test"},
        expect=200,
    )
    await o.call(
        "POST", f"/admin/api/v1/access-points/{mine}/open", token=operator, json={}, expect=400
    )
    await o.call(
        "POST",
        "/admin/api/v1/access-points/nowhere/open",
        token=operator,
        json={"reason": "contract test"},
        expect=404,
    )

    # staff and households
    staff = "/admin/api/v1/operators"
    await o.call("GET", staff, token=operator, expect=200)
    await o.call("GET", staff, token=anna, expect=403)
    body = {"username": "contract-op", "full_name": "C", "roles": ["auditor"], "site_ids": None}
    created = await o.call("POST", staff, token=operator, json=body, expect=201)
    await o.call("POST", staff, token=operator, json=body, expect=409)
    await o.call("POST", staff, token=operator, json={**body, "roles": ["x"]}, expect=400)
    await o.call("POST", staff, token=operator, json={**body, "site_ids": ["nowhere"]}, expect=404)
    await o.call("GET", f"{staff}/{created['id']}", token=operator, expect=200)
    await o.call("GET", f"{staff}/nobody", token=operator, expect=404)
    await o.call(
        "PATCH", f"{staff}/{created['id']}", token=operator, json={"full_name": "D"}, expect=200
    )
    await o.call("POST", f"{staff}/{created['id']}/reset-2fa", token=operator, expect=201)
    await o.call("DELETE", f"{staff}/{created['id']}", token=operator, expect=204)
    admin_id = node.credentials["operator"]["id"]
    await o.call("DELETE", f"{staff}/{admin_id}", token=operator, expect=409)
    await o.call("POST", "/admin/api/v1/me/recovery-codes", token=operator, expect=201)
    me = await o.call("GET", "/admin/api/v1/me", token=operator, expect=200)
    assert (me["id"], me["roles"], me["site_ids"]) == (admin_id, ["admin"], None)
    assert "staff.manage" in me["actions"]
    await o.call("GET", "/admin/api/v1/me", token=anna, expect=403)  # not staff
    household = "/api/v1/household/members"
    await o.call("GET", household, token=anna, expect=200)
    await o.call("POST", household, token=vera, json={"full_name": "Z"}, expect=403)
    member = await o.call("POST", household, token=anna, json={"full_name": "Z"}, expect=201)
    await o.call("DELETE", f"{household}/{member['id']}", token=anna, expect=204)
    await o.call("DELETE", f"{household}/{member['id']}", token=anna, expect=404)

    # the partner's circuit: errors, then 503 with Retry-After while it is open
    await o.call("POST", "/sim/v1/faults", json={"mode": "error"}, expect=200)
    statuses = set()
    for _ in range(8):
        async with node.http.post(
            f"{node.url}/api/v1/access-points/{mine}/open", headers=bearer(anna)
        ) as resp:
            body = await resp.json(content_type=None)
            contract.check(
                "POST", f"/api/v1/access-points/{mine}/open", resp.status, resp.content_type, body
            )
            statuses.add(resp.status)
    assert 503 in statuses and statuses <= {502, 503}
    await o.call("POST", "/sim/v1/faults", json={"mode": "ok"}, expect=200)

    templates = {t for _, t, _ in contract.checked}
    assert len(templates) >= 25


async def test_a_response_outside_the_document_is_caught(node: RunningNode) -> None:
    async with node.http.get(f"{node.url}/openapi.json") as resp:
        contract = Contract(await resp.json())
    with pytest.raises(AssertionError, match="answered 418"):
        contract.check("GET", "/api/v1/me", 418, "application/json", {})
    with pytest.raises(AssertionError, match="outside the schema"):
        contract.check("GET", "/api/v1/access-points", 200, "application/json", [{"id": 1}])
    with pytest.raises(AssertionError, match="not in the OpenAPI document"):
        contract.check("GET", "/api/v2/nothing", 200, "application/json", {})
    with pytest.raises(AssertionError):
        contract.check("GET", "/api/v1/me", 404, "application/json", {"title": "x"})
