"""The second vendor (acme: 202 + ticket, confirmation by callback) passes the same open tests
as the first: granted, refused, jammed, timeout → 504, breaker → 503 + Retry-After."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import RunningNode, node_settings, running_node
from tests.support.partner import ACME_DEVICE, ACME_DOOR, add_acme_door

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

# (partner, access point, its device id, the simulator's control API on the node)
VENDORS = [
    pytest.param(("simulator", "ap-a-entrance", "sim-door-1", "/sim/v1"), id="simulator"),
    pytest.param(("acme", ACME_DOOR, ACME_DEVICE, "/sim/acme/v1"), id="acme"),
]


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[RunningNode]:
    settings = node_settings(
        tmp_path,
        PROPDEV_PARTNER_TIMEOUT="1",
        PROPDEV_BREAKER_FAILURES="2",
        PROPDEV_BREAKER_RESET="60",
    )
    await add_acme_door(settings)
    async with running_node(settings) as running:
        yield running


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def open_door(node: RunningNode, token: str, door: str) -> tuple[int, Any, Any]:
    headers = {**bearer(token), "traceparent": TRACEPARENT}
    async with node.http.post(
        f"{node.url}/api/v1/access-points/{door}/open", headers=headers
    ) as resp:
        return resp.status, await resp.json(), resp.headers


async def control(node: RunningNode, method: str, path: str, body: Any = None) -> Any:
    async with node.http.request(method, f"{node.url}{path}", json=body) as resp:
        assert resp.status < 300, await resp.text()
        return await resp.json() if resp.status != 204 else None


async def command(node: RunningNode, token: str, command_id: str) -> dict[str, Any]:
    async with node.http.get(
        f"{node.url}/api/v1/commands/{command_id}", headers=bearer(token)
    ) as resp:
        assert resp.status == 200
        return dict(await resp.json())


@pytest.mark.parametrize("vendor", VENDORS)
async def test_each_vendor_opens_refuses_times_out_and_trips_its_breaker(
    node: RunningNode, vendor: tuple[str, str, str, str]
) -> None:
    _, door, device, sim = vendor
    token = await node.token_for("anna")

    # Confirmed: 200, one command at the vendor with our id as its idempotency key.
    status, body, _ = await open_door(node, token, door)
    assert status == 200, body
    received = await control(node, "GET", f"{sim}/commands")
    assert [(c["device_id"], c["request_id"]) for c in received] == [(device, body["command_id"])]
    assert received[0]["traceparent"]
    lifecycle = await command(node, token, body["command_id"])
    assert lifecycle["status"] == "confirmed"
    assert [s["step"] for s in lifecycle["steps"]] == [
        "requested",
        "decided",
        "accepted",
        "confirmed",
    ]
    assert lifecycle["vendor_command_id"] == body["vendor_command_id"]

    # Refused by the vendor: a 403, never a success; the lifecycle says why.
    await control(node, "POST", f"{sim}/faults", {"mode": "deny"})
    status, body, _ = await open_door(node, token, door)
    assert (status, body["reason"]) == (403, "denied"), body
    lifecycle = await command(node, token, body["command_id"])
    assert (lifecycle["status"], lifecycle["steps"][-1]["reason"]) == ("failed", "refused")

    # A jammed lock: refused with the vendor's reason, and the door shows the fault.
    await control(node, "POST", f"{sim}/faults", {"mode": "ok"})
    await control(node, "PATCH", f"{sim}/devices/{device}", {"state": "jammed"})
    status, body, _ = await open_door(node, token, door)
    assert (status, body["reason"]) == (403, "device_jammed"), body
    assert (await command(node, token, body["command_id"]))["steps"][-1]["reason"] == "jammed"
    await control(node, "PATCH", f"{sim}/devices/{device}", {"state": "locked"})

    # Slower than PROPDEV_PARTNER_TIMEOUT=1: our timeout answers (the vendor would have said
    # 200 after 5 s), a 504, and the command failed on timeout.
    await control(node, "POST", f"{sim}/faults", {"mode": "slow", "latency_ms": 5000})
    status, body, _ = await open_door(node, token, door)
    assert (status, body["type"].rsplit("/", 1)[-1]) == (504, "partner-timeout"), body
    assert (await command(node, token, body["command_id"]))["reason"] == "timeout"

    # Healthy again; then two failures open the circuit: 503 + Retry-After, vendor not called.
    await control(node, "POST", f"{sim}/faults", {"mode": "ok"})
    assert (await open_door(node, token, door))[0] == 200
    await control(node, "POST", f"{sim}/faults", {"mode": "error"})
    for _ in range(2):
        status, body, _ = await open_door(node, token, door)
        assert status == 502, body
    await control(node, "POST", f"{sim}/faults", {"mode": "ok"})
    sent = await control(node, "GET", f"{sim}/commands")
    status, body, headers = await open_door(node, token, door)
    assert (status, body["type"].rsplit("/", 1)[-1]) == (503, "partner-circuit-open"), body
    assert int(headers["Retry-After"]) >= 1, headers
    assert await control(node, "GET", f"{sim}/commands") == sent


async def test_one_vendor_s_open_circuit_leaves_the_other_vendor_working(
    node: RunningNode,
) -> None:
    token = await node.token_for("anna")
    await control(node, "POST", "/sim/acme/v1/faults", {"mode": "error"})
    for _ in range(2):
        assert (await open_door(node, token, ACME_DOOR))[0] == 502
    assert (await open_door(node, token, ACME_DOOR))[0] == 503
    assert (await open_door(node, token, "ap-a-entrance"))[0] == 200
