from __future__ import annotations

import base64
import dataclasses
import hmac
import json

import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from propdev.config.settings import Settings
from propdev.security import (
    InvalidTokenError,
    SigningKeys,
    TokenIssuer,
    TokenVerifier,
    certificate_thumbprint,
    check_certificate_binding,
    jwk_thumbprint,
)
from tests.unit.security.conftest import ISSUER, FakeClock


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _forge(header: dict[str, object], claims: dict[str, object], sign: bytes = b"") -> str:
    head = _b64(json.dumps(header).encode())
    body = _b64(json.dumps(claims).encode())
    return f"{head}.{body}.{_b64(sign)}"


def _claims(token: str) -> dict[str, object]:
    return jwt.decode(token, options={"verify_signature": False})


def _access(issuer: TokenIssuer, **kw: object) -> str:
    args: dict[str, object] = {
        "sub": "u1",
        "client_id": "app",
        "scope": "api openid",
        "roles": ["resident"],
        "amr": ["pwd"],
    }
    args.update(kw)
    return issuer.issue_access_token(**args)  # type: ignore[arg-type]


def test_an_issued_access_token_verifies_with_all_claims(
    issuer: TokenIssuer, verifier: TokenVerifier, keys: SigningKeys
) -> None:
    token = _access(issuer)
    header = jwt.get_unverified_header(token)
    assert header == {"alg": "PS256", "typ": "at+jwt", "kid": keys.signing_key.kid}
    claims = verifier.verify(token)
    assert claims.sub == "u1" and claims.client_id == "app"
    assert claims.scope == {"api", "openid"} and claims.roles == {"resident"}
    assert claims.amr == ("pwd",) and not claims.mfa
    raw = claims.raw
    assert raw["iss"] == ISSUER and raw["aud"] == ISSUER
    assert raw["exp"] - raw["iat"] == 300
    assert len(str(raw["jti"])) >= 16


def test_a_verified_token_is_served_from_the_cache(
    issuer: TokenIssuer, verifier: TokenVerifier
) -> None:
    token = _access(issuer)
    first = verifier.verify(token)
    assert verifier.verify(token) is first
    assert verifier.cache_size() == 1


def test_the_cache_is_bounded(
    settings: Settings, keys: SigningKeys, issuer: TokenIssuer, clock: FakeClock
) -> None:
    small = TokenVerifier(settings, keys, cache_size=2, clock=clock)
    for _ in range(5):
        small.verify(_access(issuer))
    assert small.cache_size() == 2


def test_expiry_is_enforced_with_five_seconds_of_leeway(
    issuer: TokenIssuer, verifier: TokenVerifier, clock: FakeClock
) -> None:
    token = _access(issuer)
    verifier.verify(token)  # now cached
    clock.advance(300 + 5)
    verifier.verify(token)
    clock.advance(1)
    with pytest.raises(InvalidTokenError, match="expired"):
        verifier.verify(token)
    fresh = TokenVerifier(issuer.settings, issuer.keys, clock=clock)
    with pytest.raises(InvalidTokenError, match="expired"):
        fresh.verify(token)


def test_a_token_issued_in_the_future_is_refused(
    settings: Settings, keys: SigningKeys, verifier: TokenVerifier, clock: FakeClock
) -> None:
    ahead = FakeClock(clock.now + 60)
    token = _access(TokenIssuer(settings, keys, clock=ahead))
    with pytest.raises(InvalidTokenError, match="future"):
        verifier.verify(token)


def test_alg_none_is_refused(issuer: TokenIssuer, verifier: TokenVerifier) -> None:
    claims = _claims(_access(issuer))
    token = _forge({"alg": "none", "typ": "at+jwt", "kid": issuer.keys.signing_key.kid}, claims)
    with pytest.raises(InvalidTokenError, match="algorithm"):
        verifier.verify(token)


def test_hs256_signed_with_the_public_key_is_refused(
    issuer: TokenIssuer, verifier: TokenVerifier
) -> None:
    claims = _claims(_access(issuer))
    public_pem = issuer.keys.signing_key.public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    header = {"alg": "HS256", "typ": "at+jwt", "kid": issuer.keys.signing_key.kid}
    unsigned = _forge(header, claims).rsplit(".", 1)[0]
    mac = hmac.new(public_pem, unsigned.encode(), "sha256").digest()
    with pytest.raises(InvalidTokenError, match="algorithm"):
        verifier.verify(f"{unsigned}.{_b64(mac)}")


def test_a_tampered_token_is_refused(issuer: TokenIssuer, verifier: TokenVerifier) -> None:
    head, body, sig = _access(issuer).split(".")
    claims = json.loads(base64.urlsafe_b64decode(body + "=="))
    claims["roles"] = ["admin"]
    with pytest.raises(InvalidTokenError, match="signature"):
        verifier.verify(f"{head}.{_b64(json.dumps(claims).encode())}.{sig}")


@pytest.mark.parametrize("token", ["", "abc", "a.b", "a.b.c.d", "!!!.???.***", "e30.e30.e30"])
def test_garbage_is_refused_without_crashing(verifier: TokenVerifier, token: str) -> None:
    with pytest.raises(InvalidTokenError):
        verifier.verify(token)


@pytest.mark.parametrize(
    "header",
    [
        "W10",  # [] : not an object
        "bm90IGpzb24",  # not JSON
        "eyJhbGciOiJQUzI1NiJ9=",  # padding is not base64url of a JWS
        "eyJhbGciOi+QUzI1NiJ9",  # a character outside base64url
    ],
)
def test_a_header_that_is_not_a_base64url_json_object_is_malformed(
    issuer: TokenIssuer, verifier: TokenVerifier, header: str
) -> None:
    _, body, sig = _access(issuer).split(".")
    with pytest.raises(InvalidTokenError, match="malformed"):
        verifier.verify(f"{header}.{body}.{sig}")


def test_a_valid_header_with_a_bad_payload_segment_is_refused_by_the_full_check(
    issuer: TokenIssuer, verifier: TokenVerifier
) -> None:
    head, body, sig = _access(issuer).split(".")
    with pytest.raises(InvalidTokenError, match="malformed"):
        verifier.verify(f"{head}.{body[:-2]}+/.{sig}")


@pytest.mark.parametrize(
    ("issuer_url", "audience", "reason"),
    [
        ("https://propdev.test.evil", ISSUER, "issuer"),
        ("https://propdev", ISSUER, "issuer"),
        (ISSUER, "https://other.api", "audience"),
    ],
)
def test_wrong_issuer_or_audience_is_refused(
    settings: Settings,
    keys: SigningKeys,
    verifier: TokenVerifier,
    clock: FakeClock,
    issuer_url: str,
    audience: str,
    reason: str,
) -> None:
    other = TokenIssuer(settings, keys, clock=clock)
    other.issuer, other.audience = issuer_url, audience
    with pytest.raises(InvalidTokenError, match=reason):
        verifier.verify(_access(other))


def test_an_id_token_is_not_an_access_token(issuer: TokenIssuer, verifier: TokenVerifier) -> None:
    id_token = issuer.issue_id_token("u1", "app", auth_time=issuer._clock(), amr=["pwd"], nonce="n")
    assert jwt.get_unverified_header(id_token)["typ"] == "JWT"
    claims = _claims(id_token)
    assert claims["aud"] == "app" and claims["nonce"] == "n" and claims["amr"] == ["pwd"]
    with pytest.raises(InvalidTokenError, match="not an access token"):
        verifier.verify(id_token)


def test_a_missing_required_claim_is_refused(
    issuer: TokenIssuer, verifier: TokenVerifier, keys: SigningKeys
) -> None:
    claims = _claims(_access(issuer))
    del claims["jti"]
    key = keys.signing_key
    token = jwt.encode(
        claims, key.private_key, algorithm="PS256", headers={"typ": "at+jwt", "kid": key.kid}
    )
    with pytest.raises(InvalidTokenError, match="jti"):
        verifier.verify(token)


def test_an_unknown_kid_is_refused(issuer: TokenIssuer, verifier: TokenVerifier) -> None:
    _, body, sig = _access(issuer).split(".")
    header = {"alg": "PS256", "typ": "at+jwt", "kid": "../../etc/passwd"}
    with pytest.raises(InvalidTokenError, match="unknown signing key"):
        verifier.verify(f"{_b64(json.dumps(header).encode())}.{body}.{sig}")


def test_the_jwks_has_the_kid_and_no_private_parts(issuer: TokenIssuer, keys: SigningKeys) -> None:
    jwks = issuer.jwks()
    [jwk] = jwks["keys"]
    assert jwk["kid"] == keys.signing_key.kid == jwk_thumbprint(keys.signing_key.public_key)
    assert jwk["alg"] == "PS256" and jwk["use"] == "sig" and jwk["kty"] == "RSA"
    assert not {"d", "p", "q", "dp", "dq", "qi"} & set(jwk)
    public = jwt.PyJWK(jwk).key
    assert public.public_numbers() == keys.signing_key.public_key.public_numbers()


def test_rotation_keeps_old_tokens_valid_and_signs_with_the_new_key(
    settings: Settings, issuer: TokenIssuer, keys: SigningKeys, clock: FakeClock
) -> None:
    old_token = _access(issuer)
    old_kid = keys.signing_key.kid
    # Another node (same directory) rotates; this node's verifier picks the key up.
    other = SigningKeys.load_or_create(keys.directory)
    new = other.rotate()
    assert new.kid != old_kid
    verifier = TokenVerifier(settings, keys, clock=clock)
    new_token = _access(TokenIssuer(settings, other, clock=clock))
    assert verifier.verify(new_token).sub == "u1"
    assert verifier.verify(old_token).sub == "u1"
    assert [k["kid"] for k in keys.jwks()["keys"]] == [new.kid, old_kid]
    other.retire(old_kid)
    assert other.kids() == [new.kid]


def test_key_files_are_private(keys: SigningKeys, tmp_path_factory: pytest.TempPathFactory) -> None:
    fresh = SigningKeys.load_or_create(tmp_path_factory.mktemp("fresh") / "jwt")
    [pem] = list(fresh.directory.glob("key-*.pem"))
    assert pem.stat().st_mode & 0o777 == 0o600
    assert fresh.directory.stat().st_mode & 0o777 == 0o700


def test_certificate_binding(issuer: TokenIssuer, verifier: TokenVerifier) -> None:
    cert = b"pretend DER"
    token = _access(issuer, cnf={"x5t#S256": certificate_thumbprint(cert)})
    claims = verifier.verify(token)
    check_certificate_binding(claims, cert)
    with pytest.raises(InvalidTokenError):
        check_certificate_binding(claims, b"another cert")
    with pytest.raises(InvalidTokenError):
        check_certificate_binding(claims, None)
    unbound = dataclasses.replace(claims, cnf=None)
    check_certificate_binding(unbound, None)
