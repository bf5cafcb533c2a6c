"""Keypad lockout end to end: unknown codes posted by the partner at one keypad lock it; the
right code is then refused there (audited ``locked_out``), counted, and shown to operators.

Our lockout rule, not a vendor's behaviour: the embedded simulator is the vendor; the codes
come over ``POST /partner/v1/events`` (mTLS, bound token, signed body).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from tests.support.access import AccessNode, access_node
from tests.support.partner import event, partner_client

DOOR, DEVICE = "ap-a-entrance", "sim-door-1"  # anna's
COURTYARD, COURTYARD_DEVICE = "ap-a-courtyard", "sim-door-2"  # anna's too


async def audit_of(site: AccessNode, operator: str, access_point_id: str) -> list[dict[str, Any]]:
    r = site.running
    async with r.http.get(
        f"{r.url}/admin/api/v1/audit",
        params={"access_point_id": access_point_id},
        headers={"Authorization": f"Bearer {operator}"},
    ) as resp:
        assert resp.status == 200
        return list((await resp.json())["entries"])


def metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


async def test_unknown_codes_lock_the_keypad_and_the_right_code_is_refused_there(
    tmp_path: Path,
) -> None:
    env = {"PROPDEV_KEYPAD_ATTEMPTS": "3", "PROPDEV_KEYPAD_COOLDOWN": "600"}
    async with access_node(tmp_path, **env) as site:
        r = site.running
        anna = await r.token_for("anna")
        operator = await r.token_for("operator")  # once: a TOTP code is good for one login
        now = datetime.now(UTC)
        async with r.http.post(
            f"{r.url}/api/v1/guest-passes",
            json={
                "access_point_ids": [DOOR, COURTYARD],
                "valid_from": now.isoformat(),
                "valid_until": (now + timedelta(hours=1)).isoformat(),
                "max_uses": 5,
            },
            headers={"Authorization": f"Bearer {anna}"},
        ) as resp:
            assert resp.status == 201
            issued = await resp.json()
        code = issued["code"]
        wrong = [f"{(int(code) + i) % 10**8:08d}" for i in (1, 2, 3)]

        async with partner_client(r.url, r.settings.data_dir, "simulator") as partner:
            token = await partner.token()
            batch = [event(DEVICE, "pass_presented", code=c) for c in [*wrong, code, code]]
            batch.append(event(COURTYARD_DEVICE, "pass_presented", code=code))
            status, body = await partner.post(batch, token=token)
            assert (status, body) == (202, {"accepted": 6, "duplicates": 0, "rejected": []})

        at_door = await audit_of(site, operator, DOOR)
        assert [(e["actor"], e["decision"], e["reason"]) for e in at_door] == [
            ("pass:unknown", "denied", "pass_unknown"),
            ("pass:unknown", "denied", "pass_unknown"),
            ("pass:unknown", "denied", "pass_unknown"),
            ("pass:unchecked", "denied", "locked_out"),
            ("pass:unchecked", "denied", "locked_out"),
        ]
        (courtyard,) = await audit_of(site, operator, COURTYARD)  # another keypad: not locked
        assert (courtyard["actor"], courtyard["decision"]) == (f"pass:{issued['id']}", "granted")
        async with r.http.get(f"{r.credentials['partner_sim_url']}/sim/v1/commands") as resp:
            assert len(await resp.json()) == 1  # only the courtyard opened

        async with r.http.get(f"{r.url}/metrics") as resp:
            text = await resp.text()
        assert metric(text, 'propdev_keypad_lockout_events_total{event="locked"}') == 1
        assert metric(text, 'propdev_keypad_lockout_events_total{event="refused"}') == 2

        async with r.http.ws_connect(
            f"{r.url}/admin/api/v1/ws", headers={"Authorization": f"Bearer {operator}"}
        ) as feed:
            snapshot = await feed.receive_json(timeout=10)  # the console's first push
        assert snapshot["type"] == "snapshot"
        devices = {d["id"]: d for d in snapshot["devices"]}
        keypad = devices[DOOR]["keypad"]
        assert (keypad["locked_out"], keypad["lockouts"], keypad["refused_while_locked"]) == (
            True,
            1,
            2,
        )
        assert devices[COURTYARD]["keypad"]["locked_out"] is False

        site.clock.advance(601)  # the cooldown is over: the right code opens again
        assert await site.partner_posts(DOOR, "pass_presented", code=code) == "accepted"
        assert (await audit_of(site, operator, DOOR))[-1]["decision"] == "granted"
