"""The external OIDC issuer: a fake IdP over TLS (project CA), its discovery and JWKS."""

from __future__ import annotations

import asyncio
import base64
import hmac
import json
import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from propdev.security import ExternalVerifier, InvalidTokenError
from propdev.security.external import subject_of
from tests.support.fake_idp import FakeIdP, serve_idp
from tests.unit.security.conftest import FakeClock

AUDIENCE = "https://propdev.test"


@pytest.fixture
async def idp(tmp_path: Path) -> AsyncIterator[FakeIdP]:
    async with serve_idp(tmp_path / "pki") as running:
        yield running


def make_verifier(idp: FakeIdP, clock: FakeClock | None = None, **kw: Any) -> ExternalVerifier:
    tick = clock or FakeClock()
    return ExternalVerifier(
        idp.issuer,
        AUDIENCE,
        ca_file=idp.ca_file,
        monotonic=tick,
        **kw,
    )


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _segments(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    head, body, _ = token.split(".")
    return (
        json.loads(base64.urlsafe_b64decode(head + "==")),
        json.loads(base64.urlsafe_b64decode(body + "==")),
    )


async def test_a_token_of_the_provider_is_accepted_with_a_prefixed_subject(idp: FakeIdP) -> None:
    verifier = make_verifier(idp)
    try:
        claims = await verifier.verify(idp.token(AUDIENCE, sub="alice"))
        assert claims.sub == subject_of(idp.issuer, "alice")
        assert claims.sub.startswith("ext:") and claims.sub != "alice"
        assert claims.raw["external_sub"] == "alice" and claims.raw["iss"] == idp.issuer
        assert claims.roles == frozenset()  # no roles claim configured: none
        assert claims.client_id == "console"
        assert (idp.discovery_hits, idp.jwks_hits) == (1, 1)
        await verifier.verify(idp.token(AUDIENCE, sub="bob"))
        assert (idp.discovery_hits, idp.jwks_hits) == (1, 1)  # keys cached
    finally:
        await verifier.close()


async def test_roles_come_from_the_configured_claim_and_only_known_roles(idp: FakeIdP) -> None:
    verifier = make_verifier(idp, roles_claim="realm_access.roles")
    try:
        token = idp.token(
            AUDIENCE,
            realm_access={"roles": ["operator", "partner", "offline_access"]},
            amr=["pwd", "otp"],
        )
        claims = await verifier.verify(token)
        assert claims.roles == {"operator"}  # partner is never granted by an outside issuer
        assert claims.mfa
    finally:
        await verifier.close()


async def test_discovery_naming_another_issuer_is_refused(idp: FakeIdP) -> None:
    idp.advertised_issuer = idp.issuer + "/"  # one character off
    verifier = make_verifier(idp)
    try:
        with pytest.raises(InvalidTokenError, match="unknown signing key"):
            await verifier.verify(idp.token(AUDIENCE))
        assert idp.discovery_hits == 1 and idp.jwks_hits == 0  # its keys were never read
        assert verifier.known_kids() == frozenset()
    finally:
        await verifier.close()


async def test_a_flood_of_unknown_kids_fetches_the_jwks_once_per_interval(idp: FakeIdP) -> None:
    clock = FakeClock(1000.0)
    verifier = make_verifier(idp, clock, refetch_interval=30.0)
    try:
        await verifier.verify(idp.token(AUDIENCE))
        assert idp.jwks_hits == 1
        clock.now += 31  # past the interval: the next unknown kid may refetch, once
        tokens = [idp.token(AUDIENCE, kid=secrets.token_hex(8)) for _ in range(50)]
        results = await asyncio.gather(
            *(verifier.verify(t) for t in tokens), return_exceptions=True
        )
        assert all(isinstance(r, InvalidTokenError) for r in results)
        assert idp.jwks_hits == 2  # 50 concurrent unknown kids: one shared fetch
        for token in tokens[:10]:  # and more, sequentially, within the interval: none
            with pytest.raises(InvalidTokenError, match="unknown signing key"):
                await verifier.verify(token)
        assert idp.jwks_hits == 2
        clock.now += 31
        with pytest.raises(InvalidTokenError):
            await verifier.verify(tokens[0])
        assert idp.jwks_hits == 3
    finally:
        await verifier.close()


async def test_a_rotated_key_is_found_by_one_refetch(idp: FakeIdP) -> None:
    clock = FakeClock(1000.0)
    verifier = make_verifier(idp, clock)
    try:
        await verifier.verify(idp.token(AUDIENCE))
        idp.kid = "rotated"
        clock.now += 31
        claims = await verifier.verify(idp.token(AUDIENCE, sub="carol"))
        assert claims.raw["external_sub"] == "carol" and idp.jwks_hits == 2
    finally:
        await verifier.close()


async def test_alg_none_and_hs256_with_the_public_key_are_refused(idp: FakeIdP) -> None:
    verifier = make_verifier(idp)
    try:
        good = idp.token(AUDIENCE)
        header, payload = _segments(good)
        none = ".".join(
            [
                _b64(json.dumps({**header, "alg": "none"}).encode()),
                _b64(json.dumps(payload).encode()),
                "",
            ]
        )
        with pytest.raises(InvalidTokenError, match="algorithm not allowed"):
            await verifier.verify(none)
        pem = idp.key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        head = _b64(json.dumps({**header, "alg": "HS256"}).encode())
        body = _b64(json.dumps(payload).encode())
        mac = hmac.new(pem, f"{head}.{body}".encode(), "sha256").digest()
        with pytest.raises(InvalidTokenError, match="algorithm not allowed"):
            await verifier.verify(f"{head}.{body}.{_b64(mac)}")
        assert idp.jwks_hits == 0  # refused before any key was looked up
    finally:
        await verifier.close()


async def test_an_alg_that_does_not_fit_the_key_is_refused(idp: FakeIdP) -> None:
    verifier = make_verifier(idp)
    other = ec.generate_private_key(ec.SECP256R1())
    try:
        now_token = idp.token(AUDIENCE)
        _, payload = _segments(now_token)
        forged = jwt.encode(payload, other, algorithm="ES256", headers={"kid": idp.kid})
        with pytest.raises(InvalidTokenError, match="does not fit"):
            await verifier.verify(forged)
    finally:
        await verifier.close()


@pytest.mark.parametrize(
    ("claims", "reason"),
    [
        ({"aud": "https://other.api"}, "wrong audience"),
        ({"sub": None}, "missing claim sub"),
        ({"iat": None}, "missing claim iat"),
        ({"typ": "ID"}, "ID token"),
        ({"nonce": "n-1"}, "ID token"),
    ],
)
async def test_wrong_audience_missing_claims_and_id_tokens_are_refused(
    idp: FakeIdP, claims: dict[str, Any], reason: str
) -> None:
    verifier = make_verifier(idp)
    try:
        with pytest.raises(InvalidTokenError, match=reason):
            await verifier.verify(idp.token(AUDIENCE, **claims))
    finally:
        await verifier.close()


async def test_the_issuer_is_compared_exactly(idp: FakeIdP) -> None:
    verifier = make_verifier(idp)
    try:
        await verifier.verify(idp.token(AUDIENCE))  # keys loaded
        near = idp.token(AUDIENCE, iss=idp.issuer + "x")
        assert not verifier.claims_issuer(near)
        with pytest.raises(InvalidTokenError, match="wrong issuer"):
            await verifier.verify(near)
    finally:
        await verifier.close()


async def test_expiry_has_at_most_five_seconds_of_leeway(idp: FakeIdP) -> None:
    import time

    verifier = make_verifier(idp)
    now = int(time.time())
    try:
        await verifier.verify(idp.token(AUDIENCE, exp=now - 2))  # inside the leeway
        with pytest.raises(InvalidTokenError, match="expired"):
            await verifier.verify(idp.token(AUDIENCE, exp=now - 10))
        with pytest.raises(InvalidTokenError, match="future"):
            await verifier.verify(idp.token(AUDIENCE, iat=now + 60))
    finally:
        await verifier.close()
    with pytest.raises(ValueError, match="leeway"):
        ExternalVerifier(idp.issuer, AUDIENCE, leeway=30)


async def test_an_unreachable_provider_refuses_tokens_without_hammering_it(tmp_path: Path) -> None:
    clock = FakeClock(1000.0)
    verifier = ExternalVerifier("https://127.0.0.1:9/realms/x", AUDIENCE, monotonic=clock)
    token = jwt.encode(
        {"iss": "https://127.0.0.1:9/realms/x"},
        ec.generate_private_key(ec.SECP256R1()),
        algorithm="ES256",
        headers={"kid": "k"},
    )
    try:
        for _ in range(5):
            with pytest.raises(InvalidTokenError, match="unknown signing key"):
                await verifier.verify(token)
        assert verifier.fetches == 1
    finally:
        await verifier.close()
