"""What our tokens say, claim by claim: the ID token, the thumbprint a bound token carries, the
binding check's words, and access-token claims that are absent or of the wrong type."""

from __future__ import annotations

import base64
import hashlib
from typing import Any

import jwt
import pytest

from propdev.config.settings import Settings
from propdev.security import (
    InvalidTokenError,
    SigningKeys,
    TokenIssuer,
    TokenVerifier,
    certificate_thumbprint,
    check_certificate_binding,
)
from propdev.security.tokens import check_times
from tests.unit.security.conftest import ISSUER, FakeClock

AT_ANY_TIME = {"verify_exp": False, "verify_iat": False}  # the fake clock is not the wall clock


def sign(keys: SigningKeys, claims: dict[str, Any], typ: str = "at+jwt") -> str:
    key = keys.signing_key
    return jwt.encode(
        claims, key.private_key, algorithm="PS256", headers={"typ": typ, "kid": key.kid}
    )


def base_claims(settings: Settings, clock: FakeClock, **extra: Any) -> dict[str, Any]:
    now = int(clock())
    claims: dict[str, Any] = {
        "iss": ISSUER,
        "sub": "u1",
        "aud": settings.audience,
        "exp": now + 300,
        "iat": now,
        "jti": "j1",
        "client_id": "app",
    }
    claims.update(extra)
    return claims


def test_a_thumbprint_is_the_unpadded_base64url_sha256_of_the_certificate() -> None:
    for der in (b"certificate one", b"another certificate", b"x"):
        thumb = certificate_thumbprint(der)
        assert len(thumb) == 43 and "=" not in thumb
        assert base64.urlsafe_b64decode(thumb + "=") == hashlib.sha256(der).digest()


def test_an_id_token_names_the_user_the_client_the_login_and_the_access_token(
    issuer: TokenIssuer, keys: SigningKeys, clock: FakeClock
) -> None:
    token = issuer.issue_id_token(
        "u1",
        "mobile-app",
        auth_time=clock() - 12.7,
        amr=["pwd", "otp"],
        nonce="n-1",
        access_token="the.access.token",
        extra={"name": "Vera", "sub": "not-this"},
    )
    header = jwt.get_unverified_header(token)
    assert header == {"alg": "PS256", "typ": "JWT", "kid": keys.signing_key.kid}
    claims = jwt.decode(
        token,
        keys.signing_key.public_key,
        algorithms=["PS256"],
        audience="mobile-app",
        options=AT_ANY_TIME,
    )
    now = int(clock())
    digest = hashlib.sha256(b"the.access.token").digest()[:16]
    assert claims == {
        "name": "Vera",
        "iss": ISSUER,
        "sub": "u1",
        "aud": "mobile-app",
        "exp": now + issuer.access_token_ttl,
        "iat": now,
        "auth_time": int(clock() - 12.7),
        "amr": ["pwd", "otp"],
        "nonce": "n-1",
        "at_hash": base64.urlsafe_b64encode(digest).rstrip(b"=").decode(),
    }
    assert len(claims["at_hash"]) == 22 and "=" not in claims["at_hash"]


def test_an_id_token_without_a_nonce_or_access_token_carries_neither(
    issuer: TokenIssuer, keys: SigningKeys, clock: FakeClock
) -> None:
    token = issuer.issue_id_token("u1", "mobile-app", auth_time=clock(), amr=["pwd"])
    claims = jwt.decode(
        token,
        keys.signing_key.public_key,
        algorithms=["PS256"],
        audience="mobile-app",
        options=AT_ANY_TIME,
    )
    assert "nonce" not in claims and "at_hash" not in claims


def test_an_access_token_carries_its_binding_and_grant_only_when_given(
    issuer: TokenIssuer, verifier: TokenVerifier
) -> None:
    plain = verifier.verify(issuer.issue_access_token("u1", "app", "api", ["resident"], ["pwd"]))
    assert plain.cnf is None and plain.sid is None and "sid" not in plain.raw
    bound = verifier.verify(
        issuer.issue_access_token(
            "p1", "acme", "partner", ["partner"], [], {"x5t#S256": "abc"}, sid="s-1"
        )
    )
    assert dict(bound.cnf or {}) == {"x5t#S256": "abc"} and bound.sid == "s-1"
    assert bound.exp - bound.iat == issuer.access_token_ttl


def test_the_binding_check_says_what_is_wrong(issuer: TokenIssuer, verifier: TokenVerifier) -> None:
    cert = b"the partner's certificate"
    token = issuer.issue_access_token(
        "p1", "acme", "partner", ["partner"], [], {"x5t#S256": certificate_thumbprint(cert)}
    )
    claims = verifier.verify(token)
    check_certificate_binding(claims, cert)
    with pytest.raises(InvalidTokenError) as missing:
        check_certificate_binding(claims, None)
    assert str(missing.value) == "certificate-bound token without a client certificate"
    with pytest.raises(InvalidTokenError) as other:
        check_certificate_binding(claims, b"another certificate")
    assert str(other.value) == "certificate does not match the token"


def test_a_token_without_scope_roles_or_amr_has_none(
    settings: Settings, keys: SigningKeys, verifier: TokenVerifier, clock: FakeClock
) -> None:
    claims = verifier.verify(sign(keys, base_claims(settings, clock)))
    assert (claims.sub, claims.client_id, claims.jti) == ("u1", "app", "j1")
    assert claims.scope == frozenset() and claims.roles == frozenset() and claims.amr == ()
    assert not claims.has_scope("api") and not claims.has_role("resident")
    full = verifier.verify(
        sign(keys, base_claims(settings, clock, jti="j2", scope="api", roles=["resident"]))
    )
    assert full.has_scope("api") and full.has_role("resident")
    assert not full.has_scope("admin") and not full.has_role("operator")


@pytest.mark.parametrize(
    "bad",
    [
        {"client_id": ["app"]},
        {"scope": ["api"]},
        {"roles": "resident"},
        {"roles": ["resident", 1]},
        {"amr": "pwd"},
        {"amr": ["pwd", None]},
        {"cnf": "x5t"},
    ],
    ids=lambda bad: "-".join(f"{k}={v!r}" for k, v in bad.items()),
)
def test_a_claim_of_the_wrong_type_makes_the_token_malformed(
    settings: Settings,
    keys: SigningKeys,
    verifier: TokenVerifier,
    clock: FakeClock,
    bad: dict[str, Any],
) -> None:
    with pytest.raises(InvalidTokenError) as raised:
        verifier.verify(sign(keys, base_claims(settings, clock, **bad)))
    assert str(raised.value) == "malformed claims"


def test_times_are_checked_with_the_leeway_on_the_callers_side() -> None:
    assert check_times({"exp": 100, "iat": 50}, 105.0, 5.0) == (100.0, 50.0)
    with pytest.raises(InvalidTokenError) as expired:
        check_times({"exp": 100, "iat": 50}, 105.5, 5.0)
    assert str(expired.value) == "token expired"
    assert check_times({"exp": 200, "iat": 105}, 100.0, 5.0) == (200.0, 105.0)
    with pytest.raises(InvalidTokenError) as future:
        check_times({"exp": 200, "iat": 105.5}, 100.0, 5.0)
    assert str(future.value) == "token issued in the future"


def test_a_not_before_time_is_honoured_with_the_same_leeway() -> None:
    assert check_times({"exp": 200, "iat": 90, "nbf": 105}, 100.0, 5.0) == (200.0, 90.0)
    with pytest.raises(InvalidTokenError) as early:
        check_times({"exp": 200, "iat": 90, "nbf": 105.5}, 100.0, 5.0)
    assert str(early.value) == "token not yet valid"
    assert check_times({"exp": 200, "iat": 90, "nbf": "later"}, 100.0, 5.0) == (200.0, 90.0)


@pytest.mark.parametrize("bad", [{"exp": "soon"}, {"iat": True}, {"exp": None}])
def test_time_claims_that_are_not_numbers_are_malformed(bad: dict[str, Any]) -> None:
    with pytest.raises(InvalidTokenError) as raised:
        check_times({"exp": 200, "iat": 90, **bad}, 100.0, 5.0)
    assert str(raised.value) == "malformed time claims"
