"""What our tokens say, claim by claim: the ID token, the thumbprint a bound token carries, the
binding check's words, and access-token claims that are absent or of the wrong type."""

from __future__ import annotations

import base64
import hashlib
import json
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
from propdev.security.tokens import check_times, decode_signed
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


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def forge(header: dict[str, Any], claims: dict[str, Any]) -> str:
    return f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}.{b64(b'sig')}"


def refusal(verifier: TokenVerifier, token: Any) -> str:
    with pytest.raises(InvalidTokenError) as raised:
        verifier.verify(token)
    return str(raised.value)


def test_each_refusal_says_exactly_what_is_wrong(
    settings: Settings, keys: SigningKeys, verifier: TokenVerifier, clock: FakeClock
) -> None:
    kid = keys.signing_key.kid
    good = base_claims(settings, clock)
    assert refusal(verifier, None) == "malformed token"
    assert refusal(verifier, "a.b") == "malformed token"
    assert refusal(verifier, "!!.b.c") == "malformed token"
    assert refusal(verifier, "%%%%.b.c") == "malformed token"
    assert refusal(verifier, b64(b"[1]") + ".b.c") == "malformed token"
    assert refusal(verifier, b64(b"{not json") + ".b.c") == "malformed token"
    assert refusal(verifier, forge({"alg": "HS256", "typ": "at+jwt", "kid": kid}, good)) == (
        "algorithm not allowed"
    )
    assert refusal(verifier, forge({"alg": "PS256", "typ": "JWT", "kid": kid}, good)) == (
        "not an access token"
    )
    assert refusal(verifier, forge({"alg": "PS256", "typ": "at+jwt"}, good)) == "missing kid"
    assert refusal(verifier, forge({"alg": "PS256", "typ": "at+jwt", "kid": "nope"}, good)) == (
        "unknown signing key"
    )
    assert refusal(verifier, forge({"alg": "PS256", "typ": "at+jwt", "kid": kid}, good)) == (
        "bad signature"
    )
    signed_garbage = jwt.PyJWS().encode(
        b"not json",
        keys.signing_key.private_key,
        algorithm="PS256",
        headers={"typ": "at+jwt", "kid": kid},
    )
    assert refusal(verifier, signed_garbage) == "malformed token"
    assert refusal(verifier, sign(keys, {**good, "aud": "elsewhere"})) == "wrong audience"
    assert refusal(verifier, sign(keys, {**good, "iss": "https://evil.test"})) == "wrong issuer"
    missing = dict(good)
    del missing["jti"]
    assert refusal(verifier, sign(keys, missing)) == "missing claim jti"


def test_the_shared_decoder_checks_the_issuer_it_is_given(
    settings: Settings, keys: SigningKeys, clock: FakeClock
) -> None:
    token = sign(keys, base_claims(settings, clock, iss="https://other.test"))
    public = keys.signing_key.public_key
    with pytest.raises(InvalidTokenError) as raised:
        decode_signed(token, public, "PS256", settings.audience, ISSUER)
    assert str(raised.value) == "wrong issuer"
    assert decode_signed(token, public, "PS256", settings.audience, "https://other.test")["sub"]


@pytest.mark.parametrize("at", [1_000_000_000.0, 4_000_000_000.0], ids=["2001", "2096"])
def test_times_are_judged_on_the_verifiers_clock_not_the_wall_clock(
    settings: Settings, keys: SigningKeys, at: float
) -> None:
    clock = FakeClock(at)
    issuer = TokenIssuer(settings, keys, clock=clock)
    verifier = TokenVerifier(settings, keys, clock=clock)
    token = sign(keys, base_claims(settings, clock, nbf=int(at)))
    assert verifier.verify(token).sub == "u1"
    assert verifier.verify(issuer.issue_access_token("u1", "app", "", [], [])).sub == "u1"


def test_a_token_id_is_128_random_bits(issuer: TokenIssuer, verifier: TokenVerifier) -> None:
    ids = {verifier.verify(issuer.issue_access_token("u", "app", "", [], [])).jti for _ in range(3)}
    assert len(ids) == 3 and {len(i) for i in ids} == {22}


def counting(verifier: TokenVerifier) -> list[str]:
    """Counts the full verifications (the cache answers the rest)."""
    calls: list[str] = []
    full = verifier._verify

    def spy(token: str, now: float) -> Any:
        calls.append(token)
        return full(token, now)

    verifier._verify = spy  # type: ignore[method-assign]
    return calls


def test_a_cached_token_is_verified_again_only_while_the_cache_is_not_trusted(
    issuer: TokenIssuer, verifier: TokenVerifier
) -> None:
    calls = counting(verifier)
    token = issuer.issue_access_token("u1", "app", "api", ["resident"], ["pwd"])
    trusted = {"now": True}
    verifier.cache_trusted = lambda: trusted["now"]
    verifier.verify(token)
    verifier.verify(token)
    assert len(calls) == 1
    trusted["now"] = False
    assert verifier.verify(token).sub == "u1"
    assert len(calls) == 2


def test_a_cached_token_revoked_since_is_refused(
    issuer: TokenIssuer, verifier: TokenVerifier
) -> None:
    token = issuer.issue_access_token("u1", "app", "api", ["resident"], ["pwd"])
    verifier.verify(token)
    verifier.revoked = lambda claims: claims.sub == "u1"
    assert refusal(verifier, token) == "token revoked"
    other = issuer.issue_access_token("u1", "app", "api", ["resident"], ["otp"])
    assert refusal(verifier, other) == "token revoked"


def test_a_cached_token_past_its_expiry_is_refused_as_expired(
    issuer: TokenIssuer, verifier: TokenVerifier, clock: FakeClock
) -> None:
    token = issuer.issue_access_token("u1", "app", "api", ["resident"], ["pwd"])
    verifier.verify(token)
    clock.advance(issuer.access_token_ttl + 6)
    assert refusal(verifier, token) == "token expired"


def test_the_cache_forgets_the_least_recently_used_token(
    settings: Settings, keys: SigningKeys, issuer: TokenIssuer, clock: FakeClock
) -> None:
    verifier = TokenVerifier(settings, keys, clock=clock, cache_size=2)
    calls = counting(verifier)
    a, b, c = (issuer.issue_access_token(s, "app", "", [], []) for s in ("a", "b", "c"))
    for token in (a, b, c):
        verifier.verify(token)
    verifier.verify(c)
    verifier.verify(b)
    assert calls == [a, b, c]
    verifier.verify(a)
    assert calls == [a, b, c, a]


def test_an_unknown_key_is_looked_for_on_disk_at_most_every_thirty_seconds(
    settings: Settings, keys: SigningKeys, clock: FakeClock
) -> None:
    verifier = TokenVerifier(settings, keys, clock=clock)
    other = SigningKeys.load_or_create(keys.directory)  # another node, same key directory
    assert refusal(verifier, forge({"alg": "PS256", "typ": "at+jwt", "kid": "k-x"}, {})) == (
        "unknown signing key"
    )  # looked for now
    other.rotate()  # a new key on disk, not yet read here
    new_token = TokenIssuer(settings, other, clock=clock).issue_access_token(
        "u1", "app", "", [], []
    )
    clock.advance(29.5)
    assert refusal(verifier, new_token) == "unknown signing key"  # not looked for again yet
    clock.advance(0.5)
    assert verifier.verify(new_token).sub == "u1"  # thirty seconds on: looked for, found
