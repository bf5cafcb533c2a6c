"""Each provider against its stand-in, which checks the protocol as the real service does."""

from __future__ import annotations

import json
import ssl
import time
from pathlib import Path

import aiohttp
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from propdev.push import (
    ApnsProvider,
    FcmProvider,
    PushMessage,
    PushUnavailableError,
    ServiceAccount,
    Verdict,
    WebPushProvider,
    client_context,
)
from propdev.push.apns import JWT_TTL
from tests.support.push_standins import ApnsStandIn, FcmStandIn, StandInCA, WebPushStandIn

MESSAGE = PushMessage("Шлагбаум открыт", "ap-parking · номер …C77", {"id": "7"}, "ev7")
FCM_TOKEN = "dXNlci1kZXZpY2U6APA91bH" + "x" * 120
APNS_TOKEN = "ab" * 32


class Clock:
    def __init__(self, at: float) -> None:
        self.at = at

    def __call__(self) -> float:
        return self.at


def fcm_provider(fcm: FcmStandIn, tmp_path: Path, ca: StandInCA, **kw: object) -> FcmProvider:
    account = ServiceAccount.from_file(fcm.service_account(tmp_path / "sa.json"))
    return FcmProvider(account, base_url=fcm.url, ssl_context=client_context(ca.ca_file), **kw)  # type: ignore[arg-type]


async def test_fcm_gets_one_access_token_by_jwt_bearer_and_reuses_it(
    fcm: FcmStandIn, tmp_path: Path, ca: StandInCA
) -> None:
    provider = fcm_provider(fcm, tmp_path, ca)
    try:
        for _ in range(2):
            result = await provider.send(FCM_TOKEN, MESSAGE)
            assert result.verdict is Verdict.DELIVERED
    finally:
        await provider.close()
    assert fcm.grants == 1 and provider.grants == 1
    sent = [r.body for r in fcm.received]
    assert sent[0]["token"] == FCM_TOKEN
    assert sent[0]["notification"] == {"title": MESSAGE.title, "body": MESSAGE.body}
    assert sent[0]["android"]["collapse_key"] == "ev7"


async def test_fcm_refetches_the_access_token_once_it_nears_expiry(
    fcm: FcmStandIn, tmp_path: Path, ca: StandInCA
) -> None:
    fcm.expires_in = 200  # within the refresh margin from the start: never reused
    provider = fcm_provider(fcm, tmp_path, ca)
    try:
        for _ in range(2):
            assert (await provider.send(FCM_TOKEN, MESSAGE)).verdict is Verdict.DELIVERED
    finally:
        await provider.close()
    assert fcm.grants == 2


async def test_fcm_send_without_an_issued_bearer_token_is_401(
    fcm: FcmStandIn, ca: StandInCA
) -> None:
    url = f"{fcm.url}/v1/projects/{fcm.project_id}/messages:send"
    connector = aiohttp.TCPConnector(ssl=client_context(ca.ca_file))
    async with aiohttp.ClientSession(connector=connector) as http:
        for headers in ({}, {"Authorization": "Bearer ya29.made-up"}):
            async with http.post(url, json={"message": {"token": "x"}}, headers=headers) as resp:
                assert resp.status == 401


async def test_fcm_assertion_signed_with_another_key_gets_no_token(
    fcm: FcmStandIn, tmp_path: Path, ca: StandInCA
) -> None:
    impostor = FcmStandIn(ca, fcm.project_id)  # the same names, another key pair
    impostor.key_id = fcm.key_id
    impostor.client_email = fcm.client_email
    impostor.port = fcm.port
    provider = fcm_provider(impostor, tmp_path, ca)
    try:
        with pytest.raises(PushUnavailableError):
            await provider.send(FCM_TOKEN, MESSAGE)
    finally:
        await provider.close()
    assert fcm.grants == 0 and fcm.refused[0][0] == 400 and fcm.received == []


async def test_fcm_unregistered_token_is_gone_and_a_500_is_retried(
    fcm: FcmStandIn, tmp_path: Path, ca: StandInCA
) -> None:
    provider = fcm_provider(fcm, tmp_path, ca)
    try:
        fcm.fail_next.append(500)
        assert (await provider.send(FCM_TOKEN, MESSAGE)).verdict is Verdict.RETRY
        fcm.gone.add(FCM_TOKEN)
        gone = await provider.send(FCM_TOKEN, MESSAGE)
    finally:
        await provider.close()
    assert (gone.verdict, gone.status, gone.reason) == (Verdict.GONE, 404, "UNREGISTERED")


def apns_provider(apns: ApnsStandIn, ca: StandInCA, **kw: object) -> ApnsProvider:
    options: dict[str, object] = {
        "key_id": apns.key_id,
        "team_id": apns.team_id,
        "topic": apns.topic,
        "base_url": apns.url,
        "ssl_context": client_context(ca.ca_file, http2=True),
        **kw,
    }
    key = options.pop("key", apns.key)
    return ApnsProvider(key, **options)  # type: ignore[arg-type]


async def test_apns_is_sent_over_http2_with_a_provider_jwt(
    apns: ApnsStandIn, ca: StandInCA
) -> None:
    provider = apns_provider(apns, ca)
    try:
        result = await provider.send(APNS_TOKEN, MESSAGE)
    finally:
        await provider.close()
    assert result.verdict is Verdict.DELIVERED, apns.refused
    assert apns.protocols == ["h2"]
    (got,) = apns.received
    assert got.token == APNS_TOKEN and got.body["aps"]["alert"]["title"] == MESSAGE.title
    assert got.headers["apns-collapse-id"] == "ev7" and got.headers["apns-push-type"] == "alert"


async def test_apns_refuses_a_jwt_of_another_team_or_key(apns: ApnsStandIn, ca: StandInCA) -> None:
    wrong_team = apns_provider(apns, ca, team_id="OTHERTEAM1")
    wrong_key = apns_provider(apns, ca, key=ec.generate_private_key(ec.SECP256R1()))
    try:
        for provider in (wrong_team, wrong_key):
            result = await provider.send(APNS_TOKEN, MESSAGE)
            assert (result.verdict, result.status) == (Verdict.RETRY, 403)
            assert result.reason == "InvalidProviderToken"
    finally:
        await wrong_team.close()
        await wrong_key.close()
    assert apns.received == []


async def test_apns_signs_a_new_jwt_before_the_hour_is_up(apns: ApnsStandIn, ca: StandInCA) -> None:
    clock = Clock(time.time() - JWT_TTL)  # the first JWT is signed "50 minutes ago"
    provider = apns_provider(apns, ca, clock=clock)
    try:
        assert (await provider.send(APNS_TOKEN, MESSAGE)).verdict is Verdict.DELIVERED
        assert (await provider.send(APNS_TOKEN, MESSAGE)).verdict is Verdict.DELIVERED
        assert provider.signed == 1
        clock.at += JWT_TTL
        assert (await provider.send(APNS_TOKEN, MESSAGE)).verdict is Verdict.DELIVERED
    finally:
        await provider.close()
    assert provider.signed == 2 and len(apns.received) == 3


async def test_apns_gone_token_is_410(apns: ApnsStandIn, ca: StandInCA) -> None:
    apns.gone.add(APNS_TOKEN)
    provider = apns_provider(apns, ca)
    try:
        result = await provider.send(APNS_TOKEN, MESSAGE)
    finally:
        await provider.close()
    assert (result.verdict, result.status, result.reason) == (Verdict.GONE, 410, "Unregistered")


def webpush_provider(key: ec.EllipticCurvePrivateKey, ca: StandInCA) -> WebPushProvider:
    return WebPushProvider(key, ssl_context=client_context(ca.ca_file))


async def test_web_push_is_decrypted_by_the_subscriber_and_carries_vapid(
    webpush: WebPushStandIn, vapid_key: ec.EllipticCurvePrivateKey, ca: StandInCA
) -> None:
    sub = webpush.subscribe()
    provider = webpush_provider(vapid_key, ca)
    try:
        result = await provider.send(json.dumps(sub.to_json()), MESSAGE)
    finally:
        await provider.close()
    assert result.verdict is Verdict.DELIVERED, webpush.refused
    (got,) = webpush.received
    assert got.body == {"title": MESSAGE.title, "body": MESSAGE.body, "data": {"id": "7"}}
    assert got.headers["Topic"] == "ev7"


async def test_web_push_with_another_vapid_key_is_refused_and_gone_is_410(
    webpush: WebPushStandIn, ca: StandInCA, vapid_key: ec.EllipticCurvePrivateKey
) -> None:
    sub = json.dumps(webpush.subscribe().to_json())
    other = webpush_provider(ec.generate_private_key(ec.SECP256R1()), ca)
    right = webpush_provider(vapid_key, ca)
    try:
        refused = await other.send(sub, MESSAGE)
        webpush.gone.add(json.loads(sub)["endpoint"])
        gone = await right.send(sub, MESSAGE)
    finally:
        await other.close()
        await right.close()
    assert (refused.verdict, refused.status) == (Verdict.REJECTED, 403)
    assert (gone.verdict, gone.status) == (Verdict.GONE, 410)
    assert webpush.received == []


def test_client_context_trusts_the_extra_ca_besides_the_system_store(ca: StandInCA) -> None:
    context = client_context(ca.ca_file)
    assert context.verify_mode is ssl.CERT_REQUIRED and context.check_hostname
    subjects = [dict(x[0] for x in c["subject"]) for c in context.get_ca_certs()]
    assert {"commonName": "push stand-ins test CA"} in subjects
