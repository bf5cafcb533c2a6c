"""The node seen by an OpenID Connect relying party built on libraries nobody here wrote:
Authlib's ``requests`` client for the flow, joserfc for the ID token. Everything it learns
comes from discovery; the sign-in form is filled in as a browser would. One place for the
whole relying-party view: discovery → code + PKCE → ID token checked against the JWKS (issuer,
audience, nonce, expiry, signature) → userinfo (GET and POST) → refresh with rotation (the old
refresh token refused, its family with it) → revocation (userinfo and the API refuse the
token) → ``prompt=none`` answered with ``login_required``. The parts are tested one by one in
tests/unit/security/test_oidc_conformance.py and tests/security/test_userinfo_revocation.py."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from typing import Any
from urllib.parse import parse_qs, urljoin, urlsplit

import pytest
import requests
from authlib.integrations.requests_client import OAuth2Session
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from joserfc import jwt
from joserfc.errors import BadSignatureError, InvalidClaimError
from joserfc.jwk import KeySet

from tests.e2e.conftest import RunningNode
from tests.support.oauth_client import parse_form

pytestmark = [pytest.mark.slow]


def relying_party(node: RunningNode) -> None:
    """The whole relying-party run, blocking (Authlib's requests client): call in a thread."""
    with contextlib.ExitStack() as sessions:
        run(node, sessions)


def run(node: RunningNode, sessions: contextlib.ExitStack) -> None:
    ca = str(node.settings.pki_dir / "ca.pem")
    client_id = node.credentials["mobile_client_id"]
    redirect_uri = node.credentials["redirect_uri"]
    anna = node.resident("anna")

    # Discovery, and the keys it points at.
    config = requests.get(f"{node.url}/.well-known/openid-configuration", verify=ca).json()
    assert config["issuer"] == node.url
    assert "S256" in config["code_challenge_methods_supported"]
    keys = KeySet.import_key_set(requests.get(config["jwks_uri"], verify=ca).json())
    algorithms = config["id_token_signing_alg_values_supported"]
    assert "none" not in algorithms

    rp = sessions.enter_context(relying_party_session(ca, client_id, redirect_uri, "profile phone"))
    rp.trust_env = False  # our CA, not REQUESTS_CA_BUNDLE's; no proxy to 127.0.0.1

    # Authorization code + PKCE, the form filled in as a browser would.
    verifier = secrets.token_urlsafe(48)
    nonce = secrets.token_urlsafe(16)
    url, state = rp.create_authorization_url(
        config["authorization_endpoint"], code_verifier=verifier, nonce=nonce
    )
    assert parse_qs(urlsplit(url).query)["code_challenge"] == [create_s256_code_challenge(verifier)]
    browser = sessions.enter_context(browser_session(ca))
    page = browser.get(url)
    assert page.status_code == 200, page.text
    form = parse_form(page.text)
    fields = {**form.inputs, "username": "anna", "password": anna["password"], "otp": ""}
    signed_in = browser.post(urljoin(url, form.action or url), data=fields, allow_redirects=False)
    assert signed_in.status_code in (302, 303), signed_in.text
    back = signed_in.headers["Location"]
    assert back.startswith(redirect_uri + "?")
    assert parse_qs(urlsplit(back).query)["iss"] == [node.url]  # RFC 9207
    tokens = rp.fetch_token(
        config["token_endpoint"], authorization_response=back, state=state, code_verifier=verifier
    )
    assert tokens["token_type"].lower() == "bearer"

    # The ID token: signature against the JWKS, then iss, aud, nonce, exp, iat.
    id_token = jwt.decode(tokens["id_token"], keys, algorithms=algorithms)
    assert id_token.header["alg"] in algorithms and id_token.header.get("kid")
    jwt.JWTClaimsRegistry(
        iss={"essential": True, "value": node.url},
        aud={"essential": True, "value": client_id},
        nonce={"essential": True, "value": nonce},
        sub={"essential": True},
        exp={"essential": True},
        iat={"essential": True},
    ).validate(id_token.claims)
    claims = id_token.claims
    assert claims["iat"] <= time.time() + 5 < claims["exp"] + 5
    # Changed in transit, the token no longer verifies.
    head, body, signature = tokens["id_token"].split(".")
    forged = f"{head}.{body}.{signature[:-4]}{'AAAA' if signature[-4:] != 'AAAA' else 'BBBB'}"
    with pytest.raises(BadSignatureError):
        jwt.decode(forged, keys, algorithms=algorithms)
    # A token for another audience, or a replayed one with another nonce, is refused.
    with pytest.raises(InvalidClaimError, match="aud"):
        jwt.JWTClaimsRegistry(aud={"essential": True, "value": "someone-else"}).validate(claims)
    with pytest.raises(InvalidClaimError, match="nonce"):
        jwt.JWTClaimsRegistry(nonce={"essential": True, "value": "other"}).validate(claims)

    # userinfo, GET and POST (OIDC Core 5.3.1), for the ID token's subject.
    info = rp.get(config["userinfo_endpoint"])
    assert info.status_code == 200, info.text
    assert info.json()["sub"] == claims["sub"]
    assert info.json()["preferred_username"] == "anna"
    posted = rp.post(config["userinfo_endpoint"])
    assert (posted.status_code, posted.json()) == (200, info.json())
    in_body = requests.post(
        config["userinfo_endpoint"], data={"access_token": tokens["access_token"]}, verify=ca
    )
    assert (in_body.status_code, in_body.json()) == (200, info.json())

    # Refresh: a new pair; the old refresh token is spent, and reusing it ends the family.
    first_refresh = tokens["refresh_token"]
    refreshed = rp.refresh_token(config["token_endpoint"], refresh_token=first_refresh)
    assert refreshed["refresh_token"] != first_refresh
    assert refreshed["access_token"] != tokens["access_token"]
    assert api(node, ca, refreshed["access_token"]) == 200
    reused = refresh(ca, config, client_id, first_refresh)
    assert (reused.status_code, reused.json()["error"]) == (400, "invalid_grant")
    again = refresh(ca, config, client_id, refreshed["refresh_token"])
    assert (again.status_code, again.json()["error"]) == (400, "invalid_grant")
    assert api(node, ca, refreshed["access_token"]) == 401  # the family's access tokens too

    # Revocation (RFC 7009) of a fresh session's access token: userinfo and the API refuse it.
    fresh = sign_in(node, ca, config, client_id, redirect_uri, anna["password"])
    assert api(node, ca, fresh["access_token"]) == 200
    revoked = rp.revoke_token(
        config["revocation_endpoint"], fresh["access_token"], token_type_hint="access_token"
    )
    assert revoked.status_code == 200, revoked.text
    refused = requests.get(
        config["userinfo_endpoint"],
        headers={"Authorization": f"Bearer {fresh['access_token']}"},
        verify=ca,
    )
    assert refused.status_code == 401
    assert 'error="invalid_token"' in refused.headers["WWW-Authenticate"]
    assert api(node, ca, fresh["access_token"]) == 401

    # prompt=none: nobody is signed in at the server, so login_required, with our state.
    url, state = rp.create_authorization_url(
        config["authorization_endpoint"],
        code_verifier=secrets.token_urlsafe(48),
        nonce=secrets.token_urlsafe(16),
        prompt="none",
    )
    silent = requests.get(url, allow_redirects=False, verify=ca)
    assert silent.status_code in (302, 303), silent.text
    answer = parse_qs(urlsplit(silent.headers["Location"]).query)
    assert (answer["error"], answer["state"]) == (["login_required"], [state])
    assert "code" not in answer


def sign_in(
    node: RunningNode,
    ca: str,
    config: dict[str, Any],
    client_id: str,
    redirect_uri: str,
    password: str,
) -> dict[str, Any]:
    """A second, separate sign-in of anna with a session of its own."""
    with (
        relying_party_session(ca, client_id, redirect_uri, "") as rp,
        browser_session(ca) as browser,
    ):
        verifier = secrets.token_urlsafe(48)
        url, state = rp.create_authorization_url(
            config["authorization_endpoint"],
            code_verifier=verifier,
            nonce=secrets.token_urlsafe(16),
        )
        form = parse_form(browser.get(url).text)
        fields = {**form.inputs, "username": "anna", "password": password, "otp": ""}
        back = browser.post(urljoin(url, form.action or url), data=fields, allow_redirects=False)
        return dict(
            rp.fetch_token(
                config["token_endpoint"],
                authorization_response=back.headers["Location"],
                state=state,
                code_verifier=verifier,
            )
        )


def relying_party_session(ca: str, client_id: str, redirect_uri: str, scope: str) -> OAuth2Session:
    """A public client (PKCE S256, no secret) asking for ``openid api`` and ``scope``."""
    rp = OAuth2Session(
        client_id,
        redirect_uri=redirect_uri,
        scope=f"openid {scope} api".replace("  ", " "),
        code_challenge_method="S256",
        token_endpoint_auth_method="none",
    )
    rp.verify = ca
    rp.trust_env = False  # our CA, not REQUESTS_CA_BUNDLE's; no proxy to 127.0.0.1
    return rp


def browser_session(ca: str) -> requests.Session:
    """The browser that shows the sign-in form: it keeps the form's cookies."""
    browser = requests.Session()
    browser.verify = ca
    browser.trust_env = False
    return browser


def refresh(ca: str, config: dict[str, Any], client_id: str, token: str) -> requests.Response:
    """A bare refresh request, whose refusal the RP session would raise instead of returning."""
    form = {"grant_type": "refresh_token", "refresh_token": token, "client_id": client_id}
    return requests.post(config["token_endpoint"], data=form, verify=ca)


def api(node: RunningNode, ca: str, token: str) -> int:
    me = requests.get(
        f"{node.url}/api/v1/me", headers={"Authorization": f"Bearer {token}"}, verify=ca
    )
    return me.status_code


async def test_an_authlib_relying_party_signs_in_checks_the_id_token_refreshes_and_revokes(
    node: RunningNode,
) -> None:
    await asyncio.to_thread(relying_party, node)
