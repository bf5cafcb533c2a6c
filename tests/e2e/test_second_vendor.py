"""The second vendor (acme: 202 + ticket, confirmation by callback) passes the same open tests
as the first: granted, refused, jammed, timeout → 504, breaker → 503 + Retry-After while the
other vendor keeps opening, then half-open and closed again after the reset time; and a state
report acme posts while an open of that lock awaits its ``command_result`` does not hold the
result back (the open ends with acme's answer, not a 504).

Vendor behaviour, so over the wire: ``run.py partner-sim`` is its own process (one per module)
serving both vendors over HTTPS (``/v1`` and ``/acme/v2``); the node reaches it at
``PROPDEV_PARTNER_URL``, and the simulator calls the node back at ``/partner/v1/events`` over
mTLS with each partner's certificate, bound token and signed body (acme's ``command_result``).
Faults are set through the process's control API (``/sim/v1``, ``/sim/acme/v1``)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
import pytest_asyncio

from tests.conftest import free_port
from tests.e2e.conftest import RunningNode, node_settings, running_node
from tests.support.partner import ACME_DEVICE, ACME_DOOR, add_acme_door
from tests.support.vendor_process import VendorProcess, partner_sim

pytestmark = [pytest.mark.slow, pytest.mark.asyncio(loop_scope="module")]

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
PARTNER_TIMEOUT = 3  # PROPDEV_PARTNER_TIMEOUT: an open's whole wait for the vendor
SLOW_MS = 5000  # slower than PARTNER_TIMEOUT: a 504
CONFIRM_MS = 1500  # a command_result due this long after acme's 202, well within PARTNER_TIMEOUT
BREAKER_RESET = 3.0  # seconds an open circuit waits before its trial call
RECOVERY_DEADLINE = 30.0


@dataclass(frozen=True)
class Vendor:
    partner: str
    door: str
    device: str
    control: str  # the simulator's control API under the partner-sim's URL


SIMULATOR = Vendor("simulator", "ap-a-entrance", "sim-door-1", "/sim/v1")
ACME = Vendor("acme", ACME_DOOR, ACME_DEVICE, "/sim/acme/v1")
VENDORS = [pytest.param(SIMULATOR, id="simulator"), pytest.param(ACME, id="acme")]


@dataclass
class Stack:
    node: RunningNode
    vendor: VendorProcess  # partner-sim: both vendors
    operator: str  # one login for the module: a TOTP code is good once


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def stack(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    """One ``partner-sim`` process and one node (in this loop) calling it, for the module."""
    data_dir = tmp_path_factory.mktemp("second_vendor")
    sim_port, node_port = free_port(), free_port()
    while node_port == sim_port:
        node_port = free_port()
    settings = node_settings(
        data_dir,
        PROPDEV_PORT=str(node_port),
        PROPDEV_PARTNER_URL=f"https://127.0.0.1:{sim_port}",
        PROPDEV_PARTNER_TIMEOUT=str(PARTNER_TIMEOUT),
        PROPDEV_BREAKER_FAILURES="2",
        PROPDEV_BREAKER_RESET=str(BREAKER_RESET),
    )
    await add_acme_door(settings)  # the demo estate, partner acme and its door; the CA
    async with (
        partner_sim(data_dir, callback_url=settings.public_url, port=sim_port) as vendor,
        running_node(settings) as node,
    ):
        yield Stack(node, vendor, await node.token_for("operator"))


@pytest_asyncio.fixture(loop_scope="module")
async def fresh(stack: Stack) -> Stack:
    """The vendors healthy and every circuit past its open time (a test may leave one open)."""
    for vendor in (SIMULATOR, ACME):
        await control(stack, "POST", f"{vendor.control}/faults", {"mode": "ok"})
        await control(
            stack,
            "PATCH",
            f"{vendor.control}/devices/{vendor.device}",
            {"state": "locked", "online": True},
        )
    for vendor in (SIMULATOR, ACME):
        await breaker_due(stack, stack.operator, vendor.partner)
    return stack


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def open_door(node: RunningNode, token: str, door: str) -> tuple[int, Any, Any]:
    headers = {**bearer(token), "traceparent": TRACEPARENT}
    async with node.http.post(
        f"{node.url}/api/v1/access-points/{door}/open", headers=headers
    ) as resp:
        return resp.status, await resp.json(), resp.headers


async def control(stack: Stack, method: str, path: str, body: Any = None) -> Any:
    """The partner-sim process's control API, over HTTPS."""
    return await stack.vendor.control(method, path, body)


async def command(node: RunningNode, token: str, command_id: str) -> dict[str, Any]:
    async with node.http.get(
        f"{node.url}/api/v1/commands/{command_id}", headers=bearer(token)
    ) as resp:
        assert resp.status == 200
        return dict(await resp.json())


async def breaker(node: RunningNode, operator: str, partner: str) -> dict[str, Any]:
    async with node.http.get(f"{node.url}/admin/api/v1/breakers", headers=bearer(operator)) as r:
        assert r.status == 200
        return next(b for b in (await r.json())["breakers"] if b["partner_id"] == partner)


async def breaker_due(stack: Stack, operator: str, partner: str) -> dict[str, Any]:
    """Poll the partner's breaker until it is closed or its open time is over (its next call is
    the trial of a half-open circuit)."""
    deadline = time.monotonic() + RECOVERY_DEADLINE
    while True:
        state = await breaker(stack.node, operator, partner)
        if state["state"] != "open" or state["retry_after"] == 0:
            return state
        assert time.monotonic() < deadline, state
        await asyncio.sleep(0.1)


@pytest.mark.parametrize("vendor", VENDORS)
async def test_each_vendor_opens_refuses_times_out_and_trips_its_breaker(
    fresh: Stack, vendor: Vendor
) -> None:
    stack, node = fresh, fresh.node
    other = ACME if vendor is SIMULATOR else SIMULATOR
    token, operator = await node.token_for("anna"), stack.operator
    sent_before = len(await control(stack, "GET", f"{vendor.control}/commands"))

    # Confirmed: 200, one command at the vendor with our id as its idempotency key.
    status, body, _ = await open_door(node, token, vendor.door)
    assert status == 200, body
    received = await control(stack, "GET", f"{vendor.control}/commands")
    assert len(received) == sent_before + 1
    assert (received[-1]["device_id"], received[-1]["request_id"]) == (
        vendor.device,
        body["command_id"],
    )
    assert received[-1]["traceparent"]
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
    await control(stack, "POST", f"{vendor.control}/faults", {"mode": "deny"})
    status, body, _ = await open_door(node, token, vendor.door)
    assert (status, body["reason"]) == (403, "denied"), body
    lifecycle = await command(node, token, body["command_id"])
    assert (lifecycle["status"], lifecycle["steps"][-1]["reason"]) == ("failed", "refused")

    # A jammed lock: refused with the vendor's reason, and the command failed "jammed".
    await control(stack, "POST", f"{vendor.control}/faults", {"mode": "ok"})
    device = f"{vendor.control}/devices/{vendor.device}"
    await control(stack, "PATCH", device, {"state": "jammed"})
    # Its device_jammed callback may still be on its way: a report does not wait behind the
    # open (nor the open's result behind it; see the state-report test below).
    status, body, _ = await open_door(node, token, vendor.door)
    assert (status, body["reason"]) == (403, "device_jammed"), body
    assert body["type"].endswith("/vendor-refused"), body
    lifecycle = await command(node, token, body["command_id"])
    assert (lifecycle["status"], lifecycle["steps"][-1]["reason"]) == ("failed", "jammed")
    await control(stack, "PATCH", device, {"state": "locked"})

    # Slower than PROPDEV_PARTNER_TIMEOUT: a 504, and the command failed on timeout.
    await control(
        stack, "POST", f"{vendor.control}/faults", {"mode": "slow", "latency_ms": SLOW_MS}
    )
    status, body, _ = await open_door(node, token, vendor.door)
    assert status == 504, body
    assert body["type"].endswith("/partner-timeout"), body
    lifecycle = await command(node, token, body["command_id"])
    assert (lifecycle["status"], lifecycle.get("reason")) == ("failed", "timeout"), lifecycle

    # Healthy again; then two failures open the circuit: 503 + Retry-After, vendor not called.
    await control(stack, "POST", f"{vendor.control}/faults", {"mode": "ok"})
    assert (await open_door(node, token, vendor.door))[0] == 200
    await control(stack, "POST", f"{vendor.control}/faults", {"mode": "error"})
    for _ in range(2):
        status, body, _ = await open_door(node, token, vendor.door)
        assert status == 502, body
    await control(stack, "POST", f"{vendor.control}/faults", {"mode": "ok"})
    sent = await control(stack, "GET", f"{vendor.control}/commands")
    status, body, headers = await open_door(node, token, vendor.door)
    assert status == 503, body
    assert body["type"].endswith("/partner-circuit-open"), body
    assert int(headers["Retry-After"]) >= 1, headers
    assert await control(stack, "GET", f"{vendor.control}/commands") == sent
    assert (await breaker(node, operator, vendor.partner))["state"] == "open"

    # The other vendor's circuit is its own: closed, and its doors keep opening.
    assert (await open_door(node, token, other.door))[0] == 200
    assert (await breaker(node, operator, other.partner))["state"] == "closed"

    # After the reset time the circuit lets one trial through; its success closes it.
    assert (await breaker_due(stack, operator, vendor.partner))["state"] == "open"
    status, body, _ = await open_door(node, token, vendor.door)
    assert status == 200, body
    received = await control(stack, "GET", f"{vendor.control}/commands")
    assert [c["request_id"] for c in received[len(sent) :]] == [body["command_id"]]
    closed = await breaker(node, operator, vendor.partner)
    assert (closed["state"], closed["failures"]) == ("closed", 0)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        pytest.param({"state": "jammed"}, "device_jammed", id="jammed"),
        pytest.param({"online": False}, "device_offline", id="offline"),
    ],
)
async def test_a_state_report_while_an_acme_open_awaits_its_result_does_not_hold_it(
    fresh: Stack, change: dict[str, Any], reason: str
) -> None:
    """Acme reports a change of the lock (its callback, posted at once) while our open of that
    lock awaits its ``command_result`` (due ``CONFIRM_MS`` after the 202). Acme delivers its
    callbacks in order, so the result comes only once the report's POST is answered: the report
    must not wait behind the open, or the open waits for its result until it times out (504)."""
    stack, node = fresh, fresh.node
    token = await node.token_for("anna")
    commands = f"{ACME.control}/commands"
    taken_before = len(await control(stack, "GET", commands))
    await control(stack, "POST", f"{ACME.control}/faults", {"mode": "ok", "latency_ms": CONFIRM_MS})

    tap = asyncio.create_task(open_door(node, token, ACME.door))
    deadline = time.monotonic() + PARTNER_TIMEOUT
    while len(await control(stack, "GET", commands)) == taken_before:  # acme took the unlock
        assert not tap.done(), tap.result()
        assert time.monotonic() < deadline, "acme never received the open"
        await asyncio.sleep(0.02)
    # The result is not in yet (acme answers CONFIRM_MS after the command): the open waits.
    assert not tap.done(), tap.result()
    await control(stack, "PATCH", f"{ACME.control}/devices/{ACME.device}", change)

    # The lock changed before acme carried the command out: acme's refusal, not a 504.
    status, body, _ = await tap
    assert (status, body["reason"]) == (403, reason), body
    lifecycle = await command(node, token, body["command_id"])
    assert lifecycle["status"] == "failed", lifecycle
    assert lifecycle["steps"][-1]["vendor_reason"] == reason, lifecycle


async def test_an_entry_acme_posts_while_an_open_awaits_its_result_is_applied_in_order(
    fresh: Stack,
) -> None:
    """Acme posts the ``entry`` of an earlier open of the lock (its callback, posted at once)
    while our next open of that lock awaits its ``command_result`` (due ``CONFIRM_MS`` after
    the 202). An entry keeps the device's order (it links to the open it followed), and acme
    delivers its callbacks in order, so the result comes only once the entry's POST is
    answered: the door's actor must not hold its mailbox while the open waits for acme, or the
    entry waits behind the open, and the open for its result until it times out (504)."""
    stack, node = fresh, fresh.node
    token = await node.token_for("anna")
    commands = f"{ACME.control}/commands"
    status, first, _ = await open_door(node, token, ACME.door)
    assert status == 200, first
    taken_before = len(await control(stack, "GET", commands))
    await control(stack, "POST", f"{ACME.control}/faults", {"mode": "ok", "latency_ms": CONFIRM_MS})

    tap = asyncio.create_task(open_door(node, token, ACME.door))
    deadline = time.monotonic() + PARTNER_TIMEOUT
    while len(await control(stack, "GET", commands)) == taken_before:  # acme took the unlock
        assert not tap.done(), tap.result()
        assert time.monotonic() < deadline, "acme never received the open"
        await asyncio.sleep(0.02)
    # The result is not in yet (acme answers CONFIRM_MS after the command): the open waits.
    assert not tap.done(), tap.result()
    entry = await control(
        stack,
        "POST",
        f"{ACME.control}/events",
        {
            "device_id": ACME.device,
            "type": "entry",
            "reference": first["command_id"],
            "ticket": first["vendor_command_id"],
        },
    )

    # The second open ends with acme's confirmation, not a 504.
    status, second, _ = await tap
    assert status == 200, second
    assert second["command_id"] != first["command_id"]
    # The entry was applied, linked to the open it followed, before the second open's record.
    lifecycle = await command(node, token, first["command_id"])
    assert lifecycle["status"] == "passage", lifecycle
    assert [s["step"] for s in lifecycle["steps"]][-1] == "entry", lifecycle
    assert (await command(node, token, second["command_id"]))["status"] == "confirmed"
    async with node.http.get(
        f"{node.url}/admin/api/v1/audit?limit=1000", headers=bearer(stack.operator)
    ) as resp:
        assert resp.status == 200
        entries = (await resp.json())["entries"]
    ours = [
        (e["action"], e["command_id"], e["reason"])
        for e in entries
        if e["command_id"] in (first["command_id"], second["command_id"])
    ]
    assert ours == [
        ("open", first["command_id"], ""),
        ("entry", first["command_id"], "passage"),
        ("open", second["command_id"], ""),
    ], ours
    assert entry["type"] == "entry"
