"""Partner callbacks: authenticated four ways, validated per event, deduplicated, applied in
order; device state shown honestly to residents.

Our partner API's rules, not a vendor's behaviour: the test posts as a vendor does
(``tests/support/partner.py``: mTLS, bound token, signed body) to a node with the embedded
simulator; ``run.py partner-sim``'s own callbacks over the wire are in
``test_command_lifecycle.py``.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from propdev.devkit import register_partner
from propdev.pki import partner_paths
from propdev.pki.crl import revoke_partner
from propdev.storage import Database
from tests.e2e.conftest import RunningNode
from tests.support.partner import event, partner_client

DOOR, DEVICE = "ap-a-entrance", "sim-door-1"
OTHER_DOOR, OTHER_DEVICE = "ap-a-courtyard", "sim-door-2"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def points(node: RunningNode, token: str) -> dict[str, dict[str, Any]]:
    async with node.http.get(f"{node.url}/api/v1/access-points", headers=bearer(token)) as resp:
        assert resp.status == 200
        return {p["id"]: p for p in await resp.json()}


async def events_of(node: RunningNode, token: str) -> list[dict[str, Any]]:
    async with node.http.get(f"{node.url}/api/v1/events", headers=bearer(token)) as resp:
        assert resp.status == 200
        return list(await resp.json())


async def test_a_device_offline_shows_in_the_list_and_a_replay_changes_nothing(
    node: RunningNode,
) -> None:
    anna = await node.token_for("anna")
    assert (await points(node, anna))[DOOR]["online"] is None  # never seen: unknown
    batch = [event(DEVICE, "device_online", ago=5), event(DEVICE, "device_offline", ago=1)]
    async with partner_client(node.url, node.settings.data_dir, "simulator") as partner:
        token = await partner.token()
        status, body = await partner.post(batch, token=token)
        assert (status, body) == (202, {"accepted": 2, "duplicates": 0, "rejected": []})
        shown = (await points(node, anna))[DOOR]
        assert (shown["online"], shown["state"]) == (False, "offline")
        assert 0 <= shown["last_seen_age_s"] < 60

        # The same events again, the online one last: duplicates, the door stays offline.
        status, body = await partner.post(batch[::-1], token=token)
        assert (status, body) == (202, {"accepted": 0, "duplicates": 2, "rejected": []})
    assert (await points(node, anna))[DOOR]["online"] is False


async def test_a_batch_with_bad_events_rejects_only_those_with_their_reasons(
    node: RunningNode,
) -> None:
    anna = await node.token_for("anna")
    no_time = event(DEVICE, "device_online")
    del no_time["occurred_at"]
    batch: list[Any] = [
        event(DEVICE, "device_online"),
        no_time,
        event("not-ours", "device_online"),
        event(DEVICE, "plate_recognized"),  # no plate
        event(DEVICE, "teleported"),
        "not an object",
        event(OTHER_DEVICE, "device_jammed"),
    ]
    async with partner_client(node.url, node.settings.data_dir, "simulator") as partner:
        status, body = await partner.post(batch, token=await partner.token())
    assert status == 202, body
    assert (body["accepted"], body["duplicates"]) == (2, 0)
    assert [(r["index"], r["reason"]) for r in body["rejected"]] == [
        (1, "missing_occurred_at"),
        (2, "unknown_device"),
        (3, "missing_plate"),
        (4, "unknown_type"),
        (5, "not_an_object"),
    ]
    assert body["rejected"][0]["event_id"] == no_time["event_id"]
    shown = await points(node, anna)
    assert (shown[DOOR]["online"], shown[DOOR]["state"]) == (True, "online")
    assert (shown[OTHER_DOOR]["online"], shown[OTHER_DOOR]["state"]) == (True, "jammed")


async def test_a_device_silent_past_its_heartbeat_is_unknown_not_online(
    node: RunningNode,
) -> None:
    anna = await node.token_for("anna")
    heartbeat = node.settings.device_heartbeat
    batch = [
        event(DEVICE, "device_online", ago=1),
        event(OTHER_DEVICE, "device_online", ago=heartbeat + 60),  # its last sign of life
    ]
    async with partner_client(node.url, node.settings.data_dir, "simulator") as partner:
        status, body = await partner.post(batch, token=await partner.token())
    assert (status, body["accepted"]) == (202, 2)
    shown = await points(node, anna)
    assert (shown[DOOR]["online"], shown[DOOR]["state"]) == (True, "online")
    silent = shown[OTHER_DOOR]
    assert (silent["online"], silent["state"]) == (None, "unknown")
    assert silent["last_seen_age_s"] >= heartbeat + 60


async def test_an_entry_after_an_open_reaches_the_resident_and_the_command_lifecycle(
    node: RunningNode,
) -> None:
    anna = await node.token_for("anna")
    async with node.http.ws_connect(f"{node.url}/api/v1/ws", headers=bearer(anna)) as ws:
        async with node.http.post(
            f"{node.url}/api/v1/access-points/{DOOR}/open", headers=bearer(anna)
        ) as resp:
            assert resp.status == 200
            opened = await resp.json()
        granted = await asyncio.wait_for(ws.receive_json(), timeout=10)
        assert granted["type"] == "access.granted"
        entry = event(DEVICE, "entry", request_id=opened["command_id"])
        async with partner_client(node.url, node.settings.data_dir, "simulator") as partner:
            status, body = await partner.post([entry], token=await partner.token())
        assert (status, body["accepted"]) == (202, 1)
        pushed = await asyncio.wait_for(ws.receive_json(), timeout=10)
    assert pushed["type"] == "access.entry"
    assert pushed["command_id"] == opened["command_id"] and pushed["access_point_id"] == DOOR

    async with node.http.get(
        f"{node.url}/api/v1/commands/{opened['command_id']}", headers=bearer(anna)
    ) as resp:
        command = await resp.json()
    steps = [s["step"] for s in command["steps"]]
    assert steps == ["requested", "decided", "accepted", "confirmed", "entry"]
    assert command["status"] == "passage" and command["passage"]["type"] == "entry"
    times = [s["at"] for s in command["steps"]]
    assert times == sorted(times)
    assert command["vendor_command_id"] == opened["vendor_command_id"]


async def test_an_entry_without_our_id_links_to_the_door_s_latest_open(
    node: RunningNode,
) -> None:
    boris = await node.token_for("boris")
    async with node.http.post(
        f"{node.url}/api/v1/access-points/ap-b-entrance/open", headers=bearer(boris)
    ) as resp:
        opened = await resp.json()
    async with partner_client(node.url, node.settings.data_dir, "simulator") as partner:
        status, _ = await partner.post([event("sim-door-3", "exit")], token=await partner.token())
    assert status == 202
    linked = [e for e in await events_of(node, boris) if e["type"] == "access.exit"]
    assert [e["command_id"] for e in linked] == [opened["command_id"]]


async def test_partners_without_every_proof_are_refused_and_change_nothing(
    node: RunningNode,
) -> None:
    data_dir = node.settings.data_dir
    db = Database(node.settings.database_url)
    try:
        await register_partner(node.settings, db, "intruder", ["127.0.0.0/8"])
        offline = [event(DEVICE, "device_offline")]
        async with partner_client(node.url, data_dir, "simulator") as partner:
            token = await partner.token()
            # A wrong signature, and a resident's token.
            status, _ = await partner.post(offline, token=token, secret="not the secret")
            assert status == 401
            status, _ = await partner.post(offline, token=await node.token_for("anna"))
            assert status in (401, 403)
        # No client certificate at all.
        async with partner_client(node.url, data_dir, "simulator", cert=False) as bare:
            assert (await bare.post(offline, token=token))[0] == 401
        # Another partner's certificate with this partner's token: bound to another one.
        intruder_cert = partner_paths(node.settings.pki_dir, "intruder")
        async with partner_client(node.url, data_dir, "simulator", cert=intruder_cert) as other:
            assert (await other.post(offline, token=token))[0] == 401
        # The other partner, properly authenticated, does not own our devices.
        async with partner_client(node.url, data_dir, "intruder") as intruder:
            status, body = await intruder.post(offline, token=await intruder.token())
            assert status == 202 and body["accepted"] == 0
            assert body["rejected"][0]["reason"] == "unknown_device"
        # From outside the allowlist (checked on every call, not only at token time).
        await db.execute(
            "UPDATE partners SET allowed_cidrs = :c WHERE id = 'simulator'",
            c=json.dumps(["10.0.0.0/8"]),
        )
        async with partner_client(node.url, data_dir, "simulator") as partner:
            assert (await partner.post(offline, token=token))[0] == 403
    finally:
        await db.close()
    anna = await node.token_for("anna")
    assert (await points(node, anna))[DOOR]["online"] is None


@pytest.mark.parametrize("size", [0, 501])
async def test_a_batch_of_no_or_too_many_events_is_a_400(node: RunningNode, size: int) -> None:
    async with partner_client(node.url, node.settings.data_dir, "simulator") as partner:
        batch = [event(DEVICE, "device_online") for _ in range(size)]
        status, body = await partner.post(batch, token=await partner.token())
    assert status in (400, 413) and body["status"] == status


async def test_a_certificate_revoked_while_its_connection_is_open_is_refused_on_it(
    node: RunningNode,
) -> None:
    """The TLS context checks the CRL at the handshake; a partner's connection that was opened
    before the revocation is refused at its next request (embedded: no bus to announce it)."""
    async with partner_client(
        node.url, node.settings.data_dir, "simulator", keep_alive=True
    ) as partner:
        token = await partner.token()
        status, _ = await partner.post([event(DEVICE, "device_online")], token=token)
        assert status == 202
        revoke_partner(node.settings.pki_dir, "simulator")
        status, body = await partner.post([event(DEVICE, "device_online")], token=token)
    assert status == 401, body
    assert "revoked" in body["detail"]
