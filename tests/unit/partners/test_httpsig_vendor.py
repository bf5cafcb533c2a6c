"""Signed calls over real HTTPS: the gateways of signing partners sign, the served simulator
(``run_partner_sim``) verifies with our public key and refuses what is unsigned or altered."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from propdev.config import PartnerSigning, Settings
from propdev.devkit import PartnerSimServer, run_partner_sim
from propdev.partners import (
    AcmeAdapter,
    Confirmation,
    PartnerUnavailableError,
    build_acme_gateway,
    build_gateway,
    vendor_api_key,
)
from propdev.partners.httpsig import RequestSigner, partner_key
from propdev.pki import client_context
from tests.unit.partners.conftest import http_adapter

LOCK = "LK-7F3A-0001"
DOOR = "sim-door-1"


@pytest.fixture
def signing(settings: Settings) -> Settings:
    return dataclasses.replace(
        settings,
        partner_signing=(
            PartnerSigning("simulator"),
            PartnerSigning("acme", "ecdsa-p256-sha256", "acme-key-1"),
        ),
    )


@pytest.fixture
async def served(signing: Settings) -> AsyncIterator[PartnerSimServer]:
    server = await run_partner_sim(signing, port=0)
    yield server
    await server.close()


@pytest.fixture
async def http(signing: Settings) -> AsyncIterator[aiohttp.ClientSession]:
    connector = aiohttp.TCPConnector(ssl=client_context(signing.pki_dir))
    async with aiohttp.ClientSession(connector=connector) as session:
        yield session


async def signatures(http: aiohttp.ClientSession, url: str) -> dict[str, Any]:
    async with http.get(url) as resp:
        assert resp.status == 200
        return dict(await resp.json())


async def test_a_signing_partners_opens_are_verified_by_the_vendor(
    signing: Settings, served: PartnerSimServer, http: aiohttp.ClientSession
) -> None:
    gateway = build_gateway(signing, None, base_url=served.url)
    try:
        result = await gateway.open(DOOR, request_id="req-1")
        assert result.status == "opened"
        assert {d.device_id for d in await gateway.list_devices()} >= {DOOR}
    finally:
        await gateway.close()
    key_id = partner_key(signing.data_dir, PartnerSigning("simulator")).key_id
    assert await signatures(http, f"{served.url}/sim/v1/signatures") == {
        "required": True,
        "key_id": key_id,
        "verified": 2,
        "refused": {},
    }
    assert [c["request_id"] for c in served.sim.commands()] == ["req-1"]


async def test_an_unsigned_open_is_refused_with_401_and_a_reason_and_never_executed(
    signing: Settings, served: PartnerSimServer, http: aiohttp.ClientSession
) -> None:
    unsigned = http_adapter(signing, served.url)
    try:
        with pytest.raises(PartnerUnavailableError, match=r"HTTP 401 \(invalid_signature\)"):
            await unsigned.open(DOOR, request_id="req-2")
    finally:
        await unsigned.close()
    assert served.sim.commands() == []
    counts = await signatures(http, f"{served.url}/sim/v1/signatures")
    assert (counts["verified"], counts["refused"]) == (0, {"unsigned": 1})


async def test_a_tampered_open_gets_the_reason_in_the_vendors_error(
    signing: Settings, served: PartnerSimServer, http: aiohttp.ClientSession
) -> None:
    signer = RequestSigner.for_key(partner_key(signing.data_dir, PartnerSigning("simulator")))
    signed_for = f"{served.url}/vendor/v1/devices/{DOOR}/open"
    headers = signer.sign(
        "POST",
        signed_for,
        {"Idempotency-Key": "req-3", "X-Api-Key": vendor_api_key(signing.data_dir)},
    )
    async with http.post(signed_for.replace(DOOR, "sim-door-2"), headers=headers) as resp:
        assert resp.status == 401
        assert await resp.json() == {
            "error": "invalid_signature",
            "reason": "bad_signature",
            "message": "request signature refused: bad_signature",
        }
    async with http.post(signed_for, headers=headers) as resp:
        assert resp.status == 200  # the signature itself was good, for the door it names
    async with http.post(signed_for, headers=headers) as resp:
        assert resp.status == 401 and (await resp.json())["reason"] == "replayed"
    assert [c["device_id"] for c in served.sim.commands()] == [DOOR]


async def test_acme_calls_are_signed_with_ecdsa_and_a_changed_body_is_refused(
    signing: Settings, served: PartnerSimServer, http: aiohttp.ClientSession
) -> None:
    assert served.acme is not None
    gateway = build_acme_gateway(signing, None, base_url=served.url)
    adapter = gateway.adapter
    assert isinstance(adapter, AcmeAdapter)

    async def confirm(event: dict[str, Any]) -> None:
        if event["type"] == "command_result":
            adapter.confirm(Confirmation(event["ticket"], event["result"] == "done", None))

    served.acme.callback = confirm
    try:
        opened = await gateway.open(LOCK, request_id="req-4")
        assert opened.vendor_command_id.startswith("tk_")
    finally:
        await gateway.close()

    signer = RequestSigner.for_key(
        partner_key(signing.data_dir, PartnerSigning("acme", "ecdsa-p256-sha256", "acme-key-1"))
    )
    url = f"{served.url}/acme/v2/locks/{LOCK}/commands"
    body = json.dumps({"action": "unlock", "reference": "req-5"}).encode()
    headers = signer.sign(
        "POST",
        url,
        {
            "Idempotency-Key": "req-5",
            "Content-Type": "application/json",
            "Authorization": f"Bearer {vendor_api_key(signing.data_dir, 'acme')}",
        },
        body,
    )
    changed = body.replace(b"req-5", b"req-6")
    async with http.post(url, data=changed, headers=headers) as resp:
        assert resp.status == 401
        assert await resp.json() == {
            "accepted": False,
            "code": "E_SIGNATURE",
            "detail": "digest_mismatch",
        }
    counts = await signatures(http, f"{served.url}/sim/acme/v1/signatures")
    assert counts == {
        "required": True,
        "key_id": "acme-key-1",
        "verified": 1,
        "refused": {"digest_mismatch": 1},
    }
    assert [c["request_id"] for c in served.acme.core.commands()] == ["req-4"]


async def test_a_vendor_not_configured_to_verify_takes_unsigned_calls(
    settings: Settings, server: PartnerSimServer, https: Any, http: aiohttp.ClientSession
) -> None:
    assert (await https.open(DOOR, request_id="req-7")).status == "opened"
    assert await signatures(http, f"{server.url}/sim/v1/signatures") == {"required": False}
