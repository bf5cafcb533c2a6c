"""The utilities (ЖКХ) gateway: a resident's own bills, meter readings checked before they are
forwarded, forwarded ones audited, upstream failures as 502/503/504 with the breaker.

The upstream's behaviour (its failures, its refused connection) is tried against ``run.py
utilities-sim``, its own process over HTTPS, faults set through its control API; our own checks
(ownership, validation, idempotency, audit) against the embedded simulator."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from propdev.devkit import UtilitiesSimulator
from propdev.node import Node
from propdev.security import create_user
from propdev.security.crypto import open_vault
from propdev.storage import Database
from propdev.storage.audit import AuditLog
from tests.conftest import free_port
from tests.e2e.conftest import RunningNode, node_settings, running_node
from tests.support.oauth_client import login
from tests.support.vendor_process import VendorProcess, utilities_sim

BASE = "/gateway/v1/utilities"
ANNA_COLD = "m-a12-cw"  # seeded at 231.405 m3, 30 days ago
BORIS_COLD = "m-b34-cw"


@dataclass
class Gateway:
    running: RunningNode
    node: Node

    @property
    def sim(self) -> UtilitiesSimulator:
        assert self.node.utilities.simulator is not None
        return self.node.utilities.simulator

    async def get(self, token: str, path: str) -> tuple[int, Any, dict[str, str]]:
        async with self.running.http.get(
            self.running.url + BASE + path, headers=bearer(token)
        ) as resp:
            return resp.status, await resp.json(content_type=None), dict(resp.headers)

    async def reading(
        self, token: str, body: Any, *, key: str | None = None
    ) -> tuple[int, Any, dict[str, str]]:
        headers = bearer(token) | ({"Idempotency-Key": key} if key else {})
        async with self.running.http.post(
            self.running.url + BASE + "/meter-readings", json=body, headers=headers
        ) as resp:
            return resp.status, await resp.json(content_type=None), dict(resp.headers)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
async def gateway(tmp_path: Path) -> AsyncIterator[Gateway]:
    nodes: list[Node] = []
    settings = node_settings(
        tmp_path,
        PROPDEV_PARTNER_TIMEOUT="0.5",
        PROPDEV_BREAKER_FAILURES="3",
        PROPDEV_BREAKER_RESET="60",
    )
    async with running_node(settings, on_node=nodes.append) as node:
        yield Gateway(node, nodes[0])


async def test_a_resident_sees_only_the_bills_of_their_own_apartment(gateway: Gateway) -> None:
    anna = await gateway.running.token_for("anna")
    boris = await gateway.running.token_for("boris")
    status, mine, _ = await gateway.get(anna, "/bills?account_id=LS-200034")  # ignored
    assert status == 200, mine
    assert (mine["account_id"], mine["apartment"], mine["building_id"]) == (
        "LS-100012",
        "12",
        "bld-a",
    )
    assert len(mine["bills"]) == 3
    assert all(b["id"].startswith("bill-LS-100012-") for b in mine["bills"])
    status, his, _ = await gateway.get(boris, "/bills")
    assert status == 200 and his["account_id"] == "LS-200034"
    assert not {b["id"] for b in mine["bills"]} & {b["id"] for b in his["bills"]}

    period = mine["bills"][0]["period"]
    status, one, _ = await gateway.get(anna, f"/bills?period={period}")
    assert status == 200 and [b["period"] for b in one["bills"]] == [period]
    status, problem, headers = await gateway.get(anna, "/bills?period=2026-13")
    assert status == 400 and problem["detail"].startswith("period")
    assert headers["Content-Type"].startswith("application/problem+json")

    # Vera is a member of Anna's household: the apartment's bills are hers to see too.
    vera = await gateway.running.token_for("vera")
    status, hers, _ = await gateway.get(vera, "/bills")
    assert status == 200 and hers["account_id"] == "LS-100012"

    # A resident living in no apartment of ours has no utilities account.
    running = gateway.running
    db = Database(running.settings.database_url)
    try:
        await open_vault(running.settings, db)  # the node's keys: personal fields are sealed
        await create_user(db, username="nomad", password="a-Long-pass-42", roles=["resident"])
    finally:
        await db.close()
    tokens = await login(
        running.http,
        running.url,
        client_id=running.credentials["mobile_client_id"],
        redirect_uri=running.credentials["redirect_uri"],
        username="nomad",
        password="a-Long-pass-42",
    )
    status, problem, headers = await gateway.get(str(tokens["access_token"]), "/bills")
    assert status == 404 and headers["Content-Type"].startswith("application/problem+json")
    assert "utilities account" in problem["detail"]


async def test_bad_readings_are_422_naming_the_field_and_nothing_is_forwarded(
    gateway: Gateway,
) -> None:
    anna = await gateway.running.token_for("anna")
    future = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=2)).isoformat()
    cases: list[tuple[dict[str, Any], str, str]] = [
        ({"meter_id": ANNA_COLD, "value": 231.4}, "value", "below_last_reading"),
        ({"meter_id": ANNA_COLD, "value": 1e9}, "value", "out_of_range"),
        ({"meter_id": ANNA_COLD, "value": -1}, "value", "out_of_range"),
        ({"meter_id": ANNA_COLD, "value": 232.0001}, "value", "too_many_decimals"),
        ({"meter_id": ANNA_COLD, "value": "12x"}, "value", "not_a_number"),
        ({"meter_id": ANNA_COLD, "value": 900.5}, "value", "implausible_increase"),
        ({"meter_id": BORIS_COLD, "value": 98}, "meter_id", "not_your_meter"),
        ({"meter_id": ANNA_COLD, "value": 232, "taken_at": future}, "taken_at", "in_the_future"),
        ({"meter_id": ANNA_COLD}, "value", "missing"),
        ({"meter_id": ANNA_COLD, "value": 232, "meter": 1}, "meter", "unknown_field"),
    ]
    for body, field, reason in cases:
        status, problem, headers = await gateway.reading(anna, body)
        assert status == 422, (body, problem)
        assert headers["Content-Type"].startswith("application/problem+json")
        assert (problem["field"], problem["reason"]) == (field, reason), body
        assert problem["detail"].startswith(f"{field}: ")
    assert gateway.sim.received == []
    below = (await gateway.reading(anna, cases[0][0]))[1]
    assert below["last_value"] == "231.405"


async def test_a_good_reading_is_forwarded_once_with_a_key_stored_and_audited(
    gateway: Gateway,
) -> None:
    anna = await gateway.running.token_for("anna")
    key = uuid.uuid4().hex
    status, accepted, _ = await gateway.reading(
        anna, {"meter_id": ANNA_COLD, "value": 233.125}, key=key
    )
    assert status == 201, accepted
    assert (accepted["status"], accepted["value"], accepted["meter_id"]) == (
        "accepted",
        "233.125",
        ANNA_COLD,
    )
    [sent] = gateway.sim.received
    assert sent["account_id"] == "LS-100012" and sent["value"] == "233.125"
    assert sent["reading_id"] == accepted["upstream_id"]
    upstream_key = sent["idempotency_key"]
    assert upstream_key and upstream_key != key  # ours, derived from the resident's key

    # The same key again: the first answer, nothing sent again.
    status, again, headers = await gateway.reading(
        anna, {"meter_id": ANNA_COLD, "value": 233.125}, key=key
    )
    assert (status, again, headers.get("Idempotent-Replayed")) == (201, accepted, "true")
    assert len(gateway.sim.received) == 1

    # Now the accepted reading is the last one: a lower one is refused.
    status, problem, _ = await gateway.reading(anna, {"meter_id": ANNA_COLD, "value": 233.1})
    assert (status, problem["reason"], problem["last_value"]) == (
        422,
        "below_last_reading",
        "233.125",
    )
    status, meters, _ = await gateway.get(anna, "/meters")
    assert status == 200
    cold = next(m for m in meters["meters"] if m["id"] == ANNA_COLD)
    assert (cold["last_value"], cold["unit"], cold["type"]) == ("233.125", "m3", "cold_water")

    db = Database(gateway.running.settings.database_url)
    try:
        audit = AuditLog(db)
        entries = [e for e in await audit.page(limit=1000) if e["action"] == "meter_reading"]
        ok, _, _ = await audit.verify()
    finally:
        await db.close()
    me = gateway.running.resident("anna")["id"]
    assert [(e["decision"], e["actor"]) for e in entries] == [
        ("granted", f"user:{me}"),
        ("denied", f"user:{me}"),  # the reading below the accepted one
    ]
    assert entries[1]["reason"].startswith("below_last_reading ")
    granted = [e for e in entries if e["decision"] == "granted"]
    assert len(granted) == 1 and f"meter={ANNA_COLD} value=233.125" in granted[0]["reason"]
    assert ok


UPSTREAM_TIMEOUT = 2  # PROPDEV_PARTNER_TIMEOUT: the node's wait for the utilities system


@pytest.fixture
async def remote(tmp_path: Path) -> AsyncIterator[tuple[Gateway, VendorProcess]]:
    """The node's gateway to ``run.py utilities-sim``, its own process over HTTPS."""
    nodes: list[Node] = []
    sim_port = free_port()
    settings = node_settings(
        tmp_path,
        PROPDEV_UTILITIES_URL=f"https://127.0.0.1:{sim_port}",
        PROPDEV_PARTNER_TIMEOUT=str(UPSTREAM_TIMEOUT),
        PROPDEV_BREAKER_FAILURES="3",
        PROPDEV_BREAKER_RESET="60",
    )
    async with (
        running_node(settings, on_node=nodes.append) as node,
        utilities_sim(settings.data_dir, port=sim_port) as sim,
    ):
        assert nodes[0].utilities.simulator is None  # not the embedded one
        yield Gateway(node, nodes[0]), sim


@pytest.mark.slow
async def test_upstream_failures_are_504_then_502_then_the_open_circuit_503(
    remote: tuple[Gateway, VendorProcess],
) -> None:
    gateway, sim = remote
    faults = "/sim/hcs/v1/faults"
    anna = await gateway.running.token_for("anna")
    status, _, _ = await gateway.get(anna, "/bills")
    assert status == 200  # the way there works

    await sim.control("POST", faults, {"mode": "slow", "latency_ms": UPSTREAM_TIMEOUT * 2500})
    status, problem, _ = await gateway.get(anna, "/bills")
    assert status == 504, problem
    await sim.control("POST", faults, {"mode": "error"})
    status, _, _ = await gateway.get(anna, "/bills")
    assert status == 502
    await sim.control("POST", faults, {"mode": "outage"})  # the connection is closed unanswered
    status, _, _ = await gateway.reading(anna, {"meter_id": ANNA_COLD, "value": 234})
    assert status == 502  # third failure: the circuit opens
    assert gateway.node.utilities.gateway.state == "open"

    await sim.control("POST", faults, {"mode": "ok"})  # recovered, but the circuit waits
    status, problem, headers = await gateway.get(anna, "/bills")
    assert status == 503 and headers["Content-Type"].startswith("application/problem+json")
    assert 1 <= int(headers["Retry-After"]) <= 60
    status, _, headers = await gateway.reading(anna, {"meter_id": ANNA_COLD, "value": 234})
    assert status == 503 and "Retry-After" in headers
    # Nothing reached the system while it was down.
    assert await sim.control("GET", "/sim/hcs/v1/readings") == []

    async with gateway.running.http.get(gateway.running.url + "/metrics") as resp:
        metrics = await resp.text()
    assert 'partner="utilities"' in metrics


@pytest.mark.slow
async def test_the_utilities_simulator_as_its_own_process_over_https(tmp_path: Path) -> None:
    sim_port = free_port()
    settings = node_settings(
        tmp_path,
        PROPDEV_UTILITIES_URL=f"https://127.0.0.1:{sim_port}",
        PROPDEV_BREAKER_FAILURES="1",
        PROPDEV_BREAKER_RESET="60",
    )
    async with running_node(settings) as node:
        anna = await node.token_for("anna")
        async with utilities_sim(settings.data_dir, port=sim_port) as sim:
            url = f"{node.url}{BASE}"
            async with node.http.get(f"{url}/bills", headers=bearer(anna)) as resp:
                assert resp.status == 200
                assert (await resp.json())["account_id"] == "LS-100012"
            body = {"meter_id": ANNA_COLD, "value": "240.5"}
            async with node.http.post(
                f"{url}/meter-readings", json=body, headers=bearer(anna)
            ) as resp:
                assert resp.status == 201, await resp.text()
                accepted = await resp.json()
            received = await sim.control("GET", "/sim/hcs/v1/readings")
            assert [r["reading_id"] for r in received] == [accepted["upstream_id"]]
            await sim.process.stop()
        async with node.http.get(f"{url}/bills", headers=bearer(anna)) as resp:
            assert resp.status == 502  # refused connection; the circuit opens
        async with node.http.get(f"{url}/bills", headers=bearer(anna)) as resp:
            assert resp.status == 503 and "Retry-After" in resp.headers
