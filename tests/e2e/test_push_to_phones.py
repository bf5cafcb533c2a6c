"""Push to phones end to end: residents register devices (shapes checked, nothing stored on a
bad one, another's id is not found); a plate read reaches FCM, APNs (HTTP/2) and a Web Push
service, each a stand-in over TLS that checks the protocol; gone tokens are forgotten, and so
are the tokens of a login that logs out.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from propdev.push import application_server_key
from tests.support.access import AccessNode, access_node
from tests.support.eventually import eventually
from tests.support.oauth_client import login
from tests.support.push_standins import (
    ApnsStandIn,
    FcmStandIn,
    WebPushStandIn,
    make_ca,
    pem,
)

BARRIER = "ap-parking"
FCM_TOKEN = "boris-pixel:" + "F" * 100
APNS_TOKEN = "0123456789abcdef" * 4
P256DH = base64.urlsafe_b64encode(
    ec.generate_private_key(ec.SECP256R1())
    .public_key()
    .public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
).decode()
AUTH = base64.urlsafe_b64encode(b"0123456789abcdef").decode().rstrip("=")


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@dataclass
class Phones:
    site: AccessNode
    fcm: FcmStandIn
    apns: ApnsStandIn
    webpush: WebPushStandIn

    async def post(self, token: str, body: object) -> tuple[int, dict[str, Any]]:
        r = self.site.running
        async with r.http.post(
            f"{r.url}/api/v1/me/push-tokens", json=body, headers=bearer(token)
        ) as resp:
            return resp.status, dict(await resp.json(content_type=None) or {})

    async def list(self, token: str) -> list[dict[str, Any]]:
        r = self.site.running
        async with r.http.get(f"{r.url}/api/v1/me/push-tokens", headers=bearer(token)) as resp:
            assert resp.status == 200
            return list(await resp.json())

    async def delete(self, token: str, token_id: str) -> int:
        r = self.site.running
        async with r.http.delete(
            f"{r.url}/api/v1/me/push-tokens/{token_id}", headers=bearer(token)
        ) as resp:
            return resp.status


@pytest.fixture
async def phones(tmp_path: Path) -> AsyncIterator[Phones]:
    ca = make_ca(tmp_path / "push-ca")
    vapid = ec.generate_private_key(ec.SECP256R1())
    (tmp_path / "vapid.pem").write_bytes(pem(vapid))
    fcm, apns = FcmStandIn(ca), ApnsStandIn(ca)
    webpush = WebPushStandIn(ca, application_server_key(vapid))
    for standin in (fcm, apns, webpush):
        await standin.start()
    try:
        env = {
            "PROPDEV_FCM_CREDENTIALS": str(fcm.service_account(tmp_path / "sa.json")),
            "PROPDEV_FCM_URL": fcm.url,
            "PROPDEV_APNS_KEY_FILE": str(apns.key_file(tmp_path / "apns.p8")),
            "PROPDEV_APNS_KEY_ID": apns.key_id,
            "PROPDEV_APNS_TEAM_ID": apns.team_id,
            "PROPDEV_APNS_TOPIC": apns.topic,
            "PROPDEV_APNS_URL": apns.url,
            "PROPDEV_VAPID_PRIVATE_KEY_FILE": str(tmp_path / "vapid.pem"),
            "PROPDEV_EXTRA_CA_FILE": str(ca.ca_file),
        }
        async with access_node(tmp_path / "node", **env) as site:
            yield Phones(site, fcm, apns, webpush)
    finally:
        for standin in (fcm, apns, webpush):
            await standin.stop()


BAD = [
    ({"platform": "gcm", "token": FCM_TOKEN}, "platform"),
    ({"platform": "fcm"}, "token"),
    ({"platform": "fcm", "token": "short"}, "token"),
    ({"platform": "fcm", "token": "has spaces " + "x" * 40}, "token"),
    ({"platform": "apns", "token": "ab" * 31}, "token"),
    ({"platform": "apns", "token": "zz" * 32}, "token"),
    ({"platform": "apns", "token": APNS_TOKEN, "subscription": {}}, "subscription"),
    ({"platform": "webpush", "token": FCM_TOKEN}, "token"),
    (
        {
            "platform": "webpush",
            "subscription": {
                "endpoint": "http://push.example/x",
                "keys": {"p256dh": P256DH, "auth": AUTH},
            },
        },
        "subscription.endpoint",
    ),
    (
        {
            "platform": "webpush",
            "subscription": {
                "endpoint": "https://push.example/x",
                "keys": {"p256dh": P256DH[:-8], "auth": AUTH},
            },
        },
        "subscription.keys.p256dh",
    ),
    (
        {
            "platform": "webpush",
            "subscription": {
                "endpoint": "https://push.example/x",
                "keys": {"p256dh": P256DH, "auth": AUTH + "AAAA"},
            },
        },
        "subscription.keys.auth",
    ),
    ({"platform": "fcm", "token": FCM_TOKEN, "locale": "de"}, "locale"),
    ({"platform": "fcm", "token": FCM_TOKEN, "extra": 1}, "extra"),
    ([FCM_TOKEN], "body"),
]


async def test_registration_checks_the_shape_and_stores_nothing_bad(phones: Phones) -> None:
    token = await phones.site.running.token_for("anna")
    for body, field in BAD:
        status, problem = await phones.post(token, body)
        assert (status, problem.get("field")) == (400, field), (body, problem)
        assert problem["type"].endswith("/bad-request")
    assert await phones.list(token) == []
    subscription = {"endpoint": "https://push.example/x", "keys": {"p256dh": P256DH, "auth": AUTH}}
    ids = []
    for body in (
        {"platform": "fcm", "token": FCM_TOKEN},
        {"platform": "apns", "token": APNS_TOKEN.upper()},
        {"platform": "webpush", "subscription": subscription},
    ):
        status, created = await phones.post(token, body)
        assert status == 201, created
        ids.append(created["id"])
    again = await phones.post(token, {"platform": "apns", "token": APNS_TOKEN})
    assert again == (201, {"id": ids[1]})  # the same device keeps its id
    listed = await phones.list(token)
    assert [(t["id"], t["platform"], t["hint"]) for t in listed] == [
        (ids[0], "fcm", "…FFFFFF"),
        (ids[1], "apns", "…abcdef"),
        (ids[2], "webpush", "push.example"),
    ]
    assert FCM_TOKEN not in str(listed) and APNS_TOKEN not in str(listed)


async def test_another_residents_token_is_not_found_and_a_removed_one_is_gone(
    phones: Phones,
) -> None:
    anna = await phones.site.running.token_for("anna")
    boris = await phones.site.running.token_for("boris")
    _, created = await phones.post(anna, {"platform": "fcm", "token": FCM_TOKEN})
    assert await phones.delete(boris, created["id"]) == 404
    assert [t["id"] for t in await phones.list(anna)] == [created["id"]]
    assert await phones.delete(anna, created["id"]) == 204
    assert await phones.delete(anna, created["id"]) == 404
    assert await phones.list(anna) == []


async def test_a_plate_reaches_fcm_apns_and_web_push_and_gone_tokens_are_forgotten(
    phones: Phones,
) -> None:
    site = phones.site
    token = await site.running.token_for("boris")
    async with site.running.http.post(
        f"{site.running.url}/api/v1/vehicles", json={"plate": "B777OP99"}, headers=bearer(token)
    ) as resp:
        assert resp.status == 201
    sub = phones.webpush.subscribe()
    for body in (
        {"platform": "fcm", "token": FCM_TOKEN, "locale": "en"},
        {"platform": "apns", "token": APNS_TOKEN},
        {"platform": "webpush", "subscription": sub.to_json()},
    ):
        assert (await phones.post(token, body))[0] == 201

    assert await site.partner_posts(BARRIER, "plate_recognized", plate="B777OP99") == "accepted"
    for standin in (phones.fcm, phones.apns, phones.webpush):  # a bound against hangs
        await standin.wait_until(lambda s: len(s.received) == 1, within=10)
    title = "Barrier opened for your car"
    assert phones.fcm.received[0].body["notification"]["title"] == title
    assert phones.apns.received[0].body["aps"]["alert"]["title"] == title
    assert phones.webpush.received[0].body["title"] == title
    assert phones.apns.protocols == ["h2"]
    event_id = phones.fcm.received[0].body["data"]["id"]
    assert phones.apns.received[0].headers["apns-collapse-id"] == f"ev{event_id}"

    phones.apns.gone.add(APNS_TOKEN)
    phones.webpush.gone.add(sub.endpoint)
    assert await site.partner_posts(BARRIER, "plate_recognized", plate="B777OP99") == "accepted"
    await phones.fcm.wait_until(lambda s: len(s.received) == 2, within=10)
    await phones.apns.wait_until(lambda s: (410, "Unregistered") in s.refused, within=10)
    await phones.webpush.wait_until(lambda s: (410, "subscription expired") in s.refused, within=10)

    async def only_fcm_left() -> bool:
        return [t["platform"] for t in await phones.list(token)] == ["fcm"]

    await eventually(only_fcm_left, within=10, what="the gone tokens are forgotten")


async def test_logging_out_forgets_the_devices_of_that_login(phones: Phones) -> None:
    r = phones.site.running
    user = r.resident("anna")
    tokens = await login(
        r.http,
        r.url,
        client_id=r.credentials["mobile_client_id"],
        redirect_uri=r.credentials["redirect_uri"],
        username="anna",
        password=user["password"],
    )
    other = await r.token_for("anna")  # another login (another phone)
    assert (await phones.post(tokens["access_token"], {"platform": "fcm", "token": FCM_TOKEN}))[
        0
    ] == 201
    assert (await phones.post(other, {"platform": "apns", "token": APNS_TOKEN}))[0] == 201
    async with r.http.post(
        f"{r.url}/oauth/revoke",
        data={
            "token": tokens["refresh_token"],
            "token_type_hint": "refresh_token",
            "client_id": r.credentials["mobile_client_id"],
        },
    ) as resp:
        assert resp.status == 200
    assert [t["platform"] for t in await phones.list(other)] == ["apns"]


async def staff_token(r: Any, username: str) -> str:
    """A demo staff account of ``demo-credentials.json``, logged in with its TOTP seed."""
    found = next(o for o in r.credentials["operators"] if o["username"] == username)
    tokens = await login(
        r.http,
        r.url,
        client_id=r.credentials["mobile_client_id"],
        redirect_uri=r.credentials["redirect_uri"],
        username=username,
        password=found["password"],
        totp_secret=found["totp_secret"],
    )
    return str(tokens["access_token"])


async def staff_call(r: Any, method: str, path: str, token: str, body: object = None) -> Any:
    async with r.http.request(
        method, f"{r.url}/admin/api/v1/me/{path}", json=body, headers=bearer(token)
    ) as resp:
        return resp.status, await resp.json(content_type=None)


async def test_a_device_offline_reaches_the_staff_who_opted_in_and_whose_sites_it_is_on(
    phones: Phones,
) -> None:
    site, r = phones.site, phones.site.running
    door = "ap-a-entrance"  # Riverside Park
    admin = await r.token_for("operator")  # organisation-wide
    riverside = await staff_token(r, "riverside-operator")
    harbour = await staff_token(r, "harbour-operator")  # another site: out of scope
    auditor = await staff_token(r, "auditor")  # organisation-wide, does not opt in
    sub = phones.webpush.subscribe()
    for token, body in (
        (admin, {"platform": "apns", "token": APNS_TOKEN}),
        (riverside, {"platform": "fcm", "token": FCM_TOKEN, "locale": "en"}),
        (harbour, {"platform": "webpush", "subscription": sub.to_json()}),
        (auditor, {"platform": "fcm", "token": "auditor-phone:" + "A" * 60}),
    ):
        status, created = await staff_call(r, "POST", "push-tokens", token, body)
        assert status == 201, created
    assert await staff_call(r, "GET", "push-preferences", admin) == (
        200,
        {"device_offline": False},
    )
    status, problem = await staff_call(r, "PUT", "push-preferences", admin, {"device_offline": 1})
    assert (status, problem["field"]) == (400, "device_offline")
    for token in (admin, riverside, harbour):
        body = {"device_offline": True}
        assert await staff_call(r, "PUT", "push-preferences", token, body) == (200, body)
    status, listed = await staff_call(r, "GET", "push-tokens", riverside)
    assert (status, [t["platform"] for t in listed]) == (200, ["fcm"])
    resident = await r.token_for("anna")  # a resident may not use the staff routes
    assert (await staff_call(r, "GET", "push-preferences", resident))[0] == 403

    assert await site.partner_posts(door, "device_offline") == "accepted"
    await phones.fcm.wait_until(lambda s: len(s.received) == 1, within=10)
    await phones.apns.wait_until(lambda s: len(s.received) == 1, within=10)
    fcm, apns = phones.fcm.received[0].body, phones.apns.received[0]
    assert fcm["token"] == FCM_TOKEN  # the auditor's phone got nothing: not opted in
    assert fcm["notification"]["title"] == "Device offline"
    assert fcm["data"]["access_point_id"] == door and fcm["data"]["type"] == "device.offline"
    assert apns.body["aps"]["alert"]["title"] == "Устройство не на связи"  # the default: ru
    assert apns.headers["apns-collapse-id"] == fcm["android"]["collapse_key"]

    # Still offline: a repeated report pushes nothing. Back online, then offline: pushed again.
    assert await site.partner_posts(door, "device_offline") == "accepted"
    assert await site.partner_posts(door, "device_online") == "accepted"
    assert await site.partner_posts(door, "device_offline") == "accepted"
    await phones.fcm.wait_until(lambda s: len(s.received) == 2, within=10)
    await phones.apns.wait_until(lambda s: len(s.received) == 2, within=10)

    async def all_sent() -> bool:
        return await site.node.access.outbox.pending() == 0

    await eventually(all_sent, within=10, what="the outbox is empty")
    assert len(phones.fcm.received) == len(phones.apns.received) == 2
    assert phones.webpush.received == []  # Harbour View's operator: out of scope
    assert phones.fcm.received[1].body["android"]["collapse_key"] != fcm["android"]["collapse_key"]
