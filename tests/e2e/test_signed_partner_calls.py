"""RFC 9421 end to end: ``run.py partner signing-key`` gives the vendors our public keys, the
node (its own process) signs its calls to ``run.py partner-sim``, which verifies them: opens of
both vendors work, and an unsigned, retargeted or expired request is refused with 401."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from propdev.config import PartnerSigning, Settings
from propdev.partners import vendor_api_key
from propdev.partners.httpsig import RequestSigner, partner_key, thumbprint
from tests.support.partner import ACME_DOOR, add_acme_door
from tests.support.processes import cli_env, run_cli
from tests.support.stack import node_and_vendor

pytestmark = pytest.mark.slow

SIGNING = "simulator:ed25519,acme:ecdsa-p256-sha256:acme-2026"
DOOR, DEVICE = "ap-a-entrance", "sim-door-1"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


class Stack:
    def __init__(self, http: aiohttp.ClientSession, url: str, sim_url: str, data_dir: Path):
        self.http, self.url, self.sim_url, self.data_dir = http, url, sim_url, data_dir

    async def signatures(self, control: str) -> dict[str, Any]:
        async with self.http.get(f"{self.sim_url}{control}/signatures") as resp:
            assert resp.status == 200
            return dict(await resp.json())

    async def vendor_open(self, headers: dict[str, str], device: str = DEVICE) -> tuple[int, Any]:
        url = f"{self.sim_url}/vendor/v1/devices/{device}/open"
        async with self.http.post(url, headers=headers) as resp:
            return resp.status, await resp.json()


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[tuple[Stack, str, dict[str, Any]]]:
    """(the stack, anna's token, the JWK the CLI exported for acme), node and vendor running
    as processes that sign and verify."""
    data_dir = tmp_path / "data"
    await add_acme_door(Settings.from_env({"PROPDEV_DATA_DIR": str(data_dir)}))
    env = cli_env(data_dir, PROPDEV_PARTNER_SIGNING=SIGNING)
    pem = await run_cli(["partner", "signing-key", "simulator"], env)
    assert pem.returncode == 0, pem
    public = serialization.load_pem_public_key(pem.stdout.encode())
    assert isinstance(public, ed25519.Ed25519PublicKey)
    assert f"keyid {thumbprint(public)}" in pem.stderr and "signing on" in pem.stderr
    jwk = await run_cli(["partner", "signing-key", "acme", "--format", "jwk"], env)
    assert jwk.returncode == 0, jwk
    acme_jwk = json.loads(jwk.stdout)

    async with node_and_vendor(data_dir, tmp_path / "logs", PROPDEV_PARTNER_SIGNING=SIGNING) as s:
        yield Stack(s.http, s.url, s.sim_url, data_dir), s.token, acme_jwk


async def test_a_signing_partners_opens_work_and_altered_or_unsigned_calls_are_refused(
    stack: tuple[Stack, str, dict[str, Any]],
) -> None:
    s, token, acme_jwk = stack
    assert (acme_jwk["kty"], acme_jwk["crv"], acme_jwk["alg"]) == ("EC", "P-256", "ES256")
    assert acme_jwk["kid"] == "acme-2026"

    for door in (DOOR, ACME_DOOR):
        async with s.http.post(
            f"{s.url}/api/v1/access-points/{door}/open", headers=bearer(token)
        ) as resp:
            assert resp.status == 200, await resp.text()
    vendor, acme = await s.signatures("/sim/v1"), await s.signatures("/sim/acme/v1")
    key = partner_key(s.data_dir, PartnerSigning("simulator"))
    assert (vendor["required"], vendor["key_id"], vendor["refused"]) == (True, key.key_id, {})
    assert vendor["verified"] >= 1
    assert (acme["key_id"], acme["refused"]) == (acme_jwk["kid"], {})
    assert acme["verified"] >= 1

    api_key = {"X-Api-Key": vendor_api_key(s.data_dir)}
    status, body = await s.vendor_open({**api_key, "Idempotency-Key": "stranger-1"})
    assert (status, body["error"], body["reason"]) == (401, "invalid_signature", "unsigned")

    # Our own signature, moved to another door by someone on the path: refused.
    target = f"{s.sim_url}/vendor/v1/devices/{DEVICE}/open"
    signer = RequestSigner.for_key(key)
    moved = signer.sign("POST", target, {**api_key, "Idempotency-Key": "stranger-2"})
    status, body = await s.vendor_open(moved, device="sim-door-2")
    assert (status, body["reason"]) == (401, "bad_signature")

    stale = RequestSigner.for_key(key, clock=lambda: time.time() - 300)
    old = stale.sign("POST", target, {**api_key, "Idempotency-Key": "stranger-3"})
    status, body = await s.vendor_open(old)
    assert (status, body["reason"]) == (401, "expired")

    vendor = await s.signatures("/sim/v1")
    assert vendor["refused"] == {"unsigned": 1, "expired": 1, "bad_signature": 1}
    async with s.http.get(f"{s.sim_url}/sim/v1/commands") as resp:
        commands = await resp.json()
    assert [c["request_id"] for c in commands if c["request_id"].startswith("stranger")] == []
    assert [c["device_id"] for c in commands] == [DEVICE]
