"""The simulated utilities system's HTTP surface takes any JSON body without a 500."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from propdev.devkit import UtilitiesSimulator, utilities_routes

Client = TestClient[web.Request, web.Application]
DEEP = b"[" * 1000
JSON = {"Content-Type": "application/json"}


@pytest.fixture
def sim() -> UtilitiesSimulator:
    return UtilitiesSimulator()


@pytest.fixture
async def client(aiohttp_client: Any, sim: UtilitiesSimulator) -> Client:
    app = web.Application()
    app.add_routes(utilities_routes(sim))
    return await aiohttp_client(app)  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    "body", [DEEP, b'{"meter_id": "m-a12-cw", "value": 240, "value": 1}', b"[NaN]"]
)
async def test_a_reading_it_cannot_take_as_json_is_a_400_and_not_received(
    client: Client, sim: UtilitiesSimulator, body: bytes
) -> None:
    resp = await client.post(
        "/hcs/v1/accounts/LS-100012/readings",
        data=body,
        headers={**JSON, "Idempotency-Key": "k1"},
    )

    assert resp.status == 400
    assert (await resp.json())["error"] == "invalid_request"
    assert sim.received == []


async def test_deep_json_to_its_control_api_is_a_400_and_the_faults_stay(
    client: Client, sim: UtilitiesSimulator
) -> None:
    resp = await client.post("/sim/hcs/v1/faults", data=DEEP, headers=JSON)

    assert resp.status == 400
    assert sim.faults.as_dict() == {"mode": "ok", "latency_ms": 0}
