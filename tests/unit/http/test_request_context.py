"""The per-request work of the middleware stack that is done once: the principal."""

from __future__ import annotations

from propdev.http.middlewares import PrincipalCache
from propdev.security import Claims


def _claims(jti: str) -> Claims:
    return Claims(
        sub="u1", client_id="mobile", scope=frozenset({"openid"}), roles=frozenset({"resident"}),
        amr=("pwd",), exp=2e9, iat=1e9, jti=jti, cnf=None,
        raw={"sub": "u1", "client_id": "mobile", "roles": ["resident"], "amr": ["pwd"],
             "scope": "openid", "jti": jti},
    )  # fmt: skip


def test_a_principal_is_built_once_per_verified_claims() -> None:
    cache = PrincipalCache()
    claims = _claims("j1")

    first = cache.of("token-1", claims)

    assert cache.of("token-1", claims) is first
    assert first.sub == "u1" and first.roles == frozenset({"resident"})


def test_claims_verified_anew_build_a_new_principal() -> None:
    cache = PrincipalCache()
    first = cache.of("token-1", _claims("j1"))

    again = cache.of("token-1", _claims("j1"))  # e.g. the verifier's cache entry expired

    assert again is not first and again == first


def test_the_principal_cache_is_bounded() -> None:
    cache = PrincipalCache(size=10)

    for n in range(25):
        cache.of(f"token-{n}", _claims(f"j{n}"))

    assert len(cache._by_token) <= 10
