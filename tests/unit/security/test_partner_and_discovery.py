from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID
from multidict import CIMultiDict

from propdev.security import (
    OAuthServer,
    TokenVerifier,
    certificate_thumbprint,
    check_certificate_binding,
)
from tests.unit.security.conftest import ISSUER


def _cert(common_name: str, org: str = "propdev partners") -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, org),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(Encoding.DER)


async def _client_credentials(
    oauth: OAuthServer, cert: bytes | None, remote: str = "127.0.0.1", scope: str = ""
) -> Any:
    form = {"grant_type": ["client_credentials"], "client_id": ["simulator"]}
    if scope:
        form["scope"] = [scope]
    return await oauth.token(form, CIMultiDict(), client_cert_der=cert, remote=remote)


async def test_a_partner_gets_a_certificate_bound_token(
    oauth: OAuthServer, users: dict[str, str], verifier: TokenVerifier
) -> None:
    cert = _cert("simulator")
    response = await _client_credentials(oauth, cert)
    assert response.status == 200, response.body
    assert ("Cache-Control", "no-store") in response.headers
    assert isinstance(response.body, dict) and "refresh_token" not in response.body
    claims = verifier.verify(response.body["access_token"])
    assert claims.sub == "simulator" and claims.roles == {"partner"}
    assert claims.scope == {"partner"}
    assert claims.cnf is not None and claims.cnf["x5t#S256"] == certificate_thumbprint(cert)
    check_certificate_binding(claims, cert)


@pytest.mark.parametrize(
    ("cert", "remote"),
    [
        (None, "127.0.0.1"),
        (_cert("other-partner"), "127.0.0.1"),
        (_cert("simulator", org="someone else"), "127.0.0.1"),
        (_cert("simulator"), "203.0.113.9"),
    ],
)
async def test_a_partner_without_the_right_certificate_or_address_is_refused(
    oauth: OAuthServer, users: dict[str, str], cert: bytes | None, remote: str
) -> None:
    response = await _client_credentials(oauth, cert, remote)
    assert response.status in (400, 401)
    assert isinstance(response.body, dict) and response.body["error"] == "invalid_client"


async def test_a_partner_cannot_ask_for_resident_scopes(
    oauth: OAuthServer, users: dict[str, str]
) -> None:
    response = await _client_credentials(oauth, _cert("simulator"), scope="api")
    assert isinstance(response.body, dict) and response.body["error"] == "invalid_scope"


async def test_the_mobile_app_cannot_use_client_credentials(
    oauth: OAuthServer, users: dict[str, str]
) -> None:
    form = {"grant_type": ["client_credentials"], "client_id": ["mobile-app"]}
    response = await oauth.token(form, CIMultiDict(), client_cert_der=None, remote="127.0.0.1")
    assert isinstance(response.body, dict) and response.body["error"] == "invalid_client"


async def test_discovery_lists_the_contract_fields(client: Any) -> None:
    response = await client.get("/.well-known/openid-configuration")
    assert response.status == 200
    meta = await response.json()
    assert meta["issuer"] == ISSUER
    assert meta["authorization_endpoint"] == f"{ISSUER}/oauth/authorize"
    assert meta["token_endpoint"] == f"{ISSUER}/oauth/token"
    assert meta["jwks_uri"] == f"{ISSUER}/oauth/jwks"
    assert meta["userinfo_endpoint"] == f"{ISSUER}/oauth/userinfo"
    assert meta["revocation_endpoint"] == f"{ISSUER}/oauth/revoke"
    assert set(meta["grant_types_supported"]) == {
        "authorization_code",
        "refresh_token",
        "client_credentials",
    }
    assert meta["code_challenge_methods_supported"] == ["S256"]
    assert set(meta["token_endpoint_auth_methods_supported"]) == {"none", "tls_client_auth"}
    assert meta["tls_client_certificate_bound_access_tokens"] is True
    assert meta["response_types_supported"] == ["code"]
    assert meta["subject_types_supported"] == ["public"]
    assert meta["id_token_signing_alg_values_supported"] == ["PS256"]
    assert "openid" in meta["scopes_supported"]
    same = await client.get("/.well-known/oauth-authorization-server")
    assert await same.json() == meta


async def test_the_jwks_endpoint_publishes_the_signing_key(client: Any, oauth: OAuthServer) -> None:
    response = await client.get("/oauth/jwks")
    assert response.status == 200
    jwks = await response.json()
    assert [k["kid"] for k in jwks["keys"]] == [oauth.issuer.keys.signing_key.kid]
    assert all("d" not in k for k in jwks["keys"])
