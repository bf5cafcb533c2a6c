"""The simulator's HTTP surface: vendor API details and the control API."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from propdev.devkit import (
    AcmeSimulator,
    VendorSimulator,
    acme_routes,
    control_routes,
    make_vendor_app,
)

KEY = "test-key"
AUTH = {"X-Api-Key": KEY}

Client = TestClient[web.Request, web.Application]


@pytest.fixture
async def client(aiohttp_client: Any, sim: VendorSimulator) -> Client:
    return await aiohttp_client(make_vendor_app(sim, api_key=KEY))  # type: ignore[no-any-return]


async def test_the_vendor_api_needs_the_api_key(client: Client) -> None:
    resp = await client.get("/vendor/v1/devices")

    assert resp.status == 401
    assert (await resp.json())["error"] == "unauthorized"


async def test_an_open_without_idempotency_key_is_an_invalid_request(
    client: Client, sim: VendorSimulator
) -> None:
    resp = await client.post("/vendor/v1/devices/sim-door-1/open", headers=AUTH)

    assert resp.status == 400
    assert (await resp.json())["error"] == "invalid_request"
    assert sim.commands() == []


async def test_a_replayed_open_is_marked_as_replayed(client: Client) -> None:
    headers = {**AUTH, "Idempotency-Key": "k1"}
    first = await client.post("/vendor/v1/devices/sim-door-1/open", headers=headers)
    again = await client.post("/vendor/v1/devices/sim-door-1/open", headers=headers)

    assert first.status == again.status == 200
    assert "Idempotent-Replayed" not in first.headers
    assert again.headers["Idempotent-Replayed"] == "true"
    assert await first.json() == await again.json()


async def test_refusals_carry_the_http_status_and_error_code(
    client: Client, sim: VendorSimulator
) -> None:
    sim.update_device("sim-door-1", online=False)
    headers = {**AUTH, "Idempotency-Key": "k1"}

    offline = await client.post("/vendor/v1/devices/sim-door-1/open", headers=headers)
    unknown = await client.get("/vendor/v1/devices/nope", headers=AUTH)

    assert (offline.status, (await offline.json())["error"]) == (409, "device_offline")
    assert (unknown.status, (await unknown.json())["error"]) == (404, "unknown_device")


async def test_faults_are_set_and_read_back(client: Client, sim: VendorSimulator) -> None:
    resp = await client.post("/sim/v1/faults", json={"mode": "slow", "latency_ms": 250})

    assert resp.status == 200
    assert await resp.json() == {"mode": "slow", "latency_ms": 250}
    assert await (await client.get("/sim/v1/faults")).json() == {"mode": "slow", "latency_ms": 250}
    assert sim.faults.delay == 0.25


@pytest.mark.parametrize(
    "body",
    [
        {"mode": "broken"},
        {"mode": "ok", "latency_ms": -1},
        {"mode": "ok", "latency_ms": "10"},
        {"mode": "ok", "latency_ms": True},
        {"mode": "ok", "latency_ms": 10**9},
        {"mode": "ok", "latency": 10},
        ["ok"],
        "not json",
    ],
)
async def test_bad_faults_are_a_400_problem(
    client: Client, sim: VendorSimulator, body: object
) -> None:
    if isinstance(body, str):
        resp = await client.post("/sim/v1/faults", data=body)
    else:
        resp = await client.post("/sim/v1/faults", json=body)

    assert resp.status == 400
    assert resp.content_type == "application/problem+json"
    problem = await resp.json(content_type=None)
    assert problem["status"] == 400 and problem["detail"]
    assert sim.faults.mode == "ok"


async def test_commands_are_listed_and_reset_clears_everything(
    client: Client, sim: VendorSimulator
) -> None:
    headers = {**AUTH, "Idempotency-Key": "k1", "traceparent": "00-abc-def-01"}
    await client.post("/vendor/v1/devices/sim-door-2/open", headers=headers)
    await client.post("/sim/v1/faults", json={"mode": "deny"})

    commands = await (await client.get("/sim/v1/commands")).json()
    reset = await client.post("/sim/v1/reset")

    assert [
        (c["device_id"], c["command"], c["request_id"], c["traceparent"]) for c in commands
    ] == [("sim-door-2", "open", "k1", "00-abc-def-01")]
    assert reset.status == 204
    assert await (await client.get("/sim/v1/commands")).json() == []
    assert sim.faults.mode == "ok" and not sim.knows("k1")


async def test_devices_can_be_added_and_changed_through_the_control_api(client: Client) -> None:
    added = await client.post(
        "/sim/v1/devices", json={"device_id": "gate-7", "kind": "barrier", "name": "Gate"}
    )
    changed = await client.patch("/sim/v1/devices/gate-7", json={"state": "jammed"})
    bad = await client.post("/sim/v1/devices", json={"device_id": "x", "kind": "window"})

    assert added.status == 201
    assert (await changed.json())["state"] == "jammed"
    assert bad.status == 400


async def test_the_control_routes_mount_on_another_application(
    aiohttp_client: Any, sim: VendorSimulator
) -> None:
    app = web.Application()
    app.add_routes(control_routes(sim))
    client = await aiohttp_client(app)

    resp = await client.post("/sim/v1/faults", json={"mode": "error", "latency_ms": 5})

    assert resp.status == 200
    assert sim.faults.mode == "error"
    assert (await client.get("/vendor/v1/devices")).status == 404


async def test_events_go_to_the_callback_hook() -> None:
    received: list[dict[str, Any]] = []

    async def callback(event: dict[str, Any]) -> None:
        received.append(event)

    sim = VendorSimulator(callback=callback)
    event = await sim.emit_event("sim-barrier-1", "plate_recognized", plate="A123BC")

    assert received == [event]
    assert event["type"] == "plate_recognized" and event["plate"] == "A123BC"
    assert event["event_id"] and event["occurred_at"]


DEEP = b"[" * 1000


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/sim/v1/faults"),
        ("POST", "/sim/v1/devices"),
        ("PATCH", "/sim/v1/devices/sim-door-1"),
        ("POST", "/sim/v1/passages"),
    ],
)
async def test_deep_or_duplicate_keyed_json_to_the_control_api_is_a_400_not_a_500(
    client: Client, sim: VendorSimulator, method: str, path: str
) -> None:
    device = await sim.device("sim-door-1")
    for body in (DEEP, b'{"mode": "error", "mode": "ok"}'):
        resp = await client.request(
            method, path, data=body, headers={"Content-Type": "application/json"}
        )
        assert resp.status == 400, await resp.text()
        assert resp.content_type == "application/problem+json"
    assert sim.faults.mode == "ok" and sim.passage_delay is None
    assert await sim.device("sim-door-1") == device


async def test_a_deep_body_to_acme_s_command_api_is_its_own_400_and_sends_nothing(
    aiohttp_client: Any,
) -> None:
    acme = AcmeSimulator()
    app = web.Application()
    app.add_routes(acme_routes(acme))
    acme_client = await aiohttp_client(app)
    uid = (await acme.locks())[0]["uid"]

    resp = await acme_client.post(
        f"/acme/v2/locks/{uid}/commands",
        data=b'{"action": "unlock", "reference": "r1", "x": ' + DEEP + b"}",
        headers={"Content-Type": "application/json", "Idempotency-Key": "r1"},
    )

    assert resp.status == 400
    assert (await resp.json())["code"] == "E_BAD_REQUEST"
    assert acme.core.commands() == []
