"""``/admin/api/v1/partners`` on a running node (embedded bus): applied at once, problems for
bad input, operators only, never a secret in an answer."""

from __future__ import annotations

import json
from typing import Any

from propdev.devkit import register_partner
from propdev.storage import Database
from tests.e2e.conftest import RunningNode
from tests.support.eventually import eventually


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def call(
    node: RunningNode, token: str, method: str, path: str, body: Any = None
) -> tuple[int, Any, str]:
    async with node.http.request(
        method, f"{node.url}{path}", json=body, headers=bearer(token)
    ) as resp:
        answer = await resp.json(content_type=None) if resp.status != 204 else None
        return resp.status, answer, resp.content_type


async def breakers(node: RunningNode, token: str) -> dict[str, dict[str, Any]]:
    status, body, _ = await call(node, token, "GET", "/admin/api/v1/breakers")
    assert status == 200
    return {b["partner_id"]: b for b in body["breakers"]}


NEW = {
    "name": "vendor-d",
    "adapter": "acme",
    "base_url": "https://127.0.0.1:1",
    "allow_ips": ["127.0.0.0/8"],
    "api_key": "vendor-d-key",
    "breaker_failures": 4,
}


async def test_a_partner_is_served_the_moment_it_is_registered_and_gone_once_deleted(
    node: RunningNode,
) -> None:
    operator = await node.token_for("operator")
    assert "vendor-d" not in await breakers(node, operator)

    status, created, _ = await call(node, operator, "POST", "/admin/api/v1/partners", NEW)
    assert status == 201, created
    assert "vendor-d" in await breakers(node, operator)  # a gateway on this node, no restart

    status, listed, _ = await call(node, operator, "GET", "/admin/api/v1/partners")
    assert status == 200
    assert {p["name"] for p in listed} >= {"simulator", "vendor-d"}
    assert created["webhook_secret"] not in json.dumps(listed)
    assert "vendor-d-key" not in json.dumps(listed)

    status, changed, _ = await call(
        node, operator, "PATCH", "/admin/api/v1/partners/vendor-d", {"adapter": "simulator"}
    )
    assert (status, changed["adapter"]) == (200, "simulator"), changed

    status, _, _ = await call(node, operator, "DELETE", "/admin/api/v1/partners/vendor-d")
    assert status == 204
    assert "vendor-d" not in await breakers(node, operator)
    status, _, _ = await call(node, operator, "GET", "/admin/api/v1/partners/vendor-d")
    assert status == 404


async def test_bad_input_is_a_problem_naming_the_field_and_nothing_is_stored(
    node: RunningNode,
) -> None:
    operator = await node.token_for("operator")
    for body, field in (
        ({**NEW, "adapter": "no-such-adapter"}, "adapter"),
        ({**NEW, "base_url": "http://127.0.0.1:1"}, "base_url"),
    ):
        status, problem, content_type = await call(
            node, operator, "POST", "/admin/api/v1/partners", body
        )
        assert (status, content_type, problem["field"]) == (
            400,
            "application/problem+json",
            field,
        ), problem
    status, _, _ = await call(node, operator, "GET", "/admin/api/v1/partners/vendor-d")
    assert status == 404
    status, problem, _ = await call(
        node, operator, "POST", "/admin/api/v1/partners/simulator/certificate", {"csr_pem": "x"}
    )
    assert (status, problem["field"]) == (400, "csr_pem")


async def test_residents_may_not_touch_partners(node: RunningNode) -> None:
    anna = await node.token_for("anna")
    status, _, _ = await call(node, anna, "GET", "/admin/api/v1/partners")
    assert status == 403
    status, _, _ = await call(node, anna, "POST", "/admin/api/v1/partners", NEW)
    assert status == 403


async def test_the_demo_partner_was_adopted_from_the_data_dir(node: RunningNode) -> None:
    operator = await node.token_for("operator")
    status, shown, _ = await call(node, operator, "GET", "/admin/api/v1/partners/simulator")
    assert status == 200
    assert (shown["adapter"], shown["credential"], shown["server_ca"]) == (
        "simulator",
        "api_key",
        "pem",
    )


async def test_a_partner_the_file_based_tool_registers_while_the_node_runs_is_adopted(
    node: RunningNode,
) -> None:
    operator = await node.token_for("operator")
    db = Database(node.settings.database_url)
    try:  # what `run.py pki issue-partner late --allow-ip 127.0.0.0/8` does
        await register_partner(
            node.settings, db, "late", ["127.0.0.0/8"], base_url="https://127.0.0.1:1"
        )
    finally:
        await db.close()

    async def adopted() -> bool:
        status, shown, _ = await call(node, operator, "GET", "/admin/api/v1/partners/late")
        return status == 200 and shown["credential"] == "api_key"

    # The node's reconcile pass (every 5 s) adopts its data-dir secrets and builds its gateway.
    await eventually(adopted, within=15.0, what="the late partner adopted")
    await eventually(
        lambda: _has_gateway(node, operator, "late"), within=15.0, what="a gateway for it"
    )


async def _has_gateway(node: RunningNode, token: str, name: str) -> bool:
    return name in await breakers(node, token)
