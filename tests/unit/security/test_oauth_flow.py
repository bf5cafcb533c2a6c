from __future__ import annotations

from typing import Any

import jwt
import pytest

from propdev.security import TokenVerifier, current_code
from tests.unit.security.conftest import (
    CLIENT_ID,
    ISSUER,
    REDIRECT_URI,
    TOTP_SECRET,
    FakeClock,
    pkce_pair,
)
from tests.unit.security.helpers import (
    authorize_params,
    code_for,
    exchange,
    form_inputs,
    hidden_fields,
    login,
    query,
    refresh,
)


async def test_the_login_page_is_a_form_with_username_password_and_otp(client: Any) -> None:
    _, challenge = pkce_pair()
    page = await client.get("/oauth/authorize", params=authorize_params(challenge))
    assert page.status == 200
    assert page.headers["Content-Type"].startswith("text/html")
    assert page.headers["X-Frame-Options"] == "DENY"
    html = await page.text()
    inputs = form_inputs(html)
    assert inputs["username"]["type"] == "text"
    assert inputs["password"]["type"] == "password"
    assert inputs["otp"]["type"] == "text"
    hidden = hidden_fields(html)
    assert hidden["state"] == "st-123" and hidden["code_challenge"] == challenge
    assert "form_ticket" in hidden
    visible = {k for k, a in inputs.items() if a.get("type") != "hidden"}
    assert visible == {"username", "password", "otp"}
    assert "http://" not in html and "https://" not in html  # no outside assets


async def test_code_and_pkce_login_gives_tokens(
    client: Any, verifier: TokenVerifier, users: dict[str, str]
) -> None:
    response, code_verifier = await login(client)
    assert response.status == 303
    location = response.headers["Location"]
    assert location.startswith(REDIRECT_URI + "?")
    params = query(location)
    assert params["state"] == "st-123" and params["iss"] == ISSUER
    assert len(params["code"]) >= 43

    token_response = await exchange(client, params["code"], code_verifier)
    assert token_response.status == 200, await token_response.text()
    assert token_response.headers["Cache-Control"] == "no-store"
    body = await token_response.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] == 300
    assert body["scope"] == "openid api"
    assert len(body["refresh_token"]) >= 43
    claims = verifier.verify(body["access_token"])
    assert claims.sub == users["alice"] and claims.client_id == CLIENT_ID
    assert claims.roles == {"resident"} and claims.amr == ("pwd",)
    id_token = jwt.decode(body["id_token"], options={"verify_signature": False})
    assert id_token["aud"] == CLIENT_ID and id_token["nonce"] == "nonce-1"
    assert id_token["sub"] == users["alice"] and id_token["amr"] == ["pwd"]
    assert "auth_time" in id_token and "at_hash" in id_token

    info = await client.get(
        "/oauth/userinfo", headers={"Authorization": f"Bearer {body['access_token']}"}
    )
    assert info.status == 200
    assert (await info.json())["sub"] == users["alice"]


async def test_userinfo_needs_a_valid_bearer_token(client: Any) -> None:
    missing = await client.get("/oauth/userinfo")
    assert missing.status == 401 and missing.headers["WWW-Authenticate"] == "Bearer"
    bad = await client.get("/oauth/userinfo", headers={"Authorization": "Bearer x.y.z"})
    assert bad.status == 401 and 'error="invalid_token"' in bad.headers["WWW-Authenticate"]


async def test_refresh_tokens_rotate_and_reuse_revokes_the_family(client: Any) -> None:
    code, code_verifier = await code_for(client)
    first = await (await exchange(client, code, code_verifier)).json()

    rotated = await refresh(client, first["refresh_token"])
    assert rotated.status == 200 and rotated.headers["Cache-Control"] == "no-store"
    second = await rotated.json()
    assert second["refresh_token"] != first["refresh_token"]
    assert second["access_token"] != first["access_token"]

    reused = await refresh(client, first["refresh_token"])
    assert reused.status == 400 and (await reused.json())["error"] == "invalid_grant"
    # The whole family is gone: the token issued by the rotation no longer works either.
    after = await refresh(client, second["refresh_token"])
    assert after.status == 400 and (await after.json())["error"] == "invalid_grant"


async def test_a_refresh_token_does_not_outlive_its_absolute_expiry(
    client: Any, clock: FakeClock
) -> None:
    code, code_verifier = await code_for(client)
    tokens = await (await exchange(client, code, code_verifier)).json()
    clock.advance(30 * 24 * 3600 - 10)
    tokens = await (await refresh(client, tokens["refresh_token"])).json()
    clock.advance(20)  # rotation did not extend the family's life
    expired = await refresh(client, tokens["refresh_token"])
    assert expired.status == 400


async def test_a_code_works_once_and_a_replay_revokes_what_it_gave(client: Any) -> None:
    code, code_verifier = await code_for(client)
    first = await exchange(client, code, code_verifier)
    assert first.status == 200
    tokens = await first.json()
    replay = await exchange(client, code, code_verifier)
    assert replay.status == 400 and (await replay.json())["error"] == "invalid_grant"
    revoked = await refresh(client, tokens["refresh_token"])
    assert revoked.status == 400


async def test_a_code_expires_after_sixty_seconds(client: Any, clock: FakeClock) -> None:
    code, code_verifier = await code_for(client)
    clock.advance(61)
    late = await exchange(client, code, code_verifier)
    assert late.status == 400 and (await late.json())["error"] == "invalid_grant"


async def test_a_wrong_code_verifier_is_refused(client: Any) -> None:
    code, _ = await code_for(client)
    other_verifier, _ = pkce_pair()
    bad = await exchange(client, code, other_verifier)
    assert bad.status == 400 and (await bad.json())["error"] == "invalid_grant"


async def test_a_code_is_bound_to_its_redirect_uri(client: Any) -> None:
    code, code_verifier = await code_for(client)
    bad = await exchange(client, code, code_verifier, redirect_uri=REDIRECT_URI + "x")
    assert bad.status == 400 and (await bad.json())["error"] == "invalid_grant"


async def test_a_token_request_without_verifier_is_refused(client: Any) -> None:
    code, _ = await code_for(client)
    bad = await exchange(client, code, "", code_verifier="")
    assert bad.status == 400


@pytest.mark.parametrize(
    "change",
    [
        {"code_challenge_method": "plain"},
        {"code_challenge_method": ""},
        {"code_challenge": "", "code_challenge_method": ""},
        {"response_type": "token"},
        {"scope": "admin-everything"},
    ],
)
async def test_bad_requests_from_a_known_client_redirect_with_an_error(
    client: Any, change: dict[str, str]
) -> None:
    _, challenge = pkce_pair()
    params = {k: v for k, v in authorize_params(challenge, **change).items() if v}
    response = await client.get("/oauth/authorize", params=params, allow_redirects=False)
    assert response.status == 303
    back = query(response.headers["Location"])
    assert response.headers["Location"].startswith(REDIRECT_URI + "?")
    assert back["error"] in {"invalid_request", "unsupported_response_type", "invalid_scope"}
    assert back["state"] == "st-123" and back["iss"] == ISSUER
    assert "code" not in back


@pytest.mark.parametrize(
    "change",
    [
        {"redirect_uri": REDIRECT_URI + "/"},
        {"redirect_uri": REDIRECT_URI.upper()},
        {"redirect_uri": REDIRECT_URI + "?x=1"},
        {"redirect_uri": "https://evil.example/cb"},
        {"redirect_uri": ""},
        {"client_id": "no-such-app"},
    ],
)
async def test_a_bad_client_or_redirect_uri_gets_an_error_page_and_no_redirect(
    client: Any, change: dict[str, str]
) -> None:
    _, challenge = pkce_pair()
    params = {k: v for k, v in authorize_params(challenge, **change).items() if v}
    response = await client.get("/oauth/authorize", params=params, allow_redirects=False)
    assert response.status == 400
    assert "Location" not in response.headers
    assert response.headers["Content-Type"].startswith("text/html")


async def test_a_wrong_password_shows_the_form_again(client: Any) -> None:
    wrong, _ = await login(client, password="not it")
    unknown, _ = await login(client, username="nobody")
    for response in (wrong, unknown):
        assert response.status == 401 and "Location" not in response.headers
        html = await response.text()
        assert "Wrong username, password or one-time code." in html
        assert "password" in form_inputs(html)


async def test_too_many_failures_lock_the_username(client: Any) -> None:
    for _ in range(5):
        failed, _ = await login(client, password="nope")
        assert failed.status == 401
    locked, _ = await login(client)  # even the right password: the account is throttled
    assert locked.status == 429
    assert int(locked.headers["Retry-After"]) >= 1


async def test_an_edited_form_is_refused(client: Any) -> None:
    _, challenge = pkce_pair()
    page = await client.get("/oauth/authorize", params=authorize_params(challenge))
    fields = hidden_fields(await page.text())
    _, other_challenge = pkce_pair()
    fields.update(code_challenge=other_challenge, username="alice", password="x", otp="")
    response = await client.post("/oauth/authorize", data=fields, allow_redirects=False)
    assert response.status == 400 and "Location" not in response.headers


async def test_an_operator_needs_a_valid_totp_code_and_gets_otp_in_amr(
    client: Any, clock: FakeClock, verifier: TokenVerifier
) -> None:
    without, _ = await login(client, username="oscar")
    assert without.status == 401
    wrong, _ = await login(client, username="oscar", otp="000000")
    assert wrong.status == 401

    otp = current_code(TOTP_SECRET, clock())
    code, code_verifier = await code_for(client, username="oscar", otp=otp)
    tokens = await (await exchange(client, code, code_verifier)).json()
    claims = verifier.verify(tokens["access_token"])
    assert claims.amr == ("pwd", "otp") and claims.mfa and claims.roles == {"operator"}
    refreshed = await (await refresh(client, tokens["refresh_token"])).json()
    assert verifier.verify(refreshed["access_token"]).amr == ("pwd", "otp")


async def test_a_totp_code_is_accepted_once(client: Any, clock: FakeClock) -> None:
    otp = current_code(TOTP_SECRET, clock())
    first, _ = await login(client, username="oscar", otp=otp)
    assert first.status == 303
    replay, _ = await login(client, username="oscar", otp=otp)
    assert replay.status == 401
    clock.advance(30)
    older, _ = await login(client, username="oscar", otp=otp)  # previous step, already used
    assert older.status == 401
    fresh, _ = await login(client, username="oscar", otp=current_code(TOTP_SECRET, clock()))
    assert fresh.status == 303


async def test_a_totp_code_two_steps_old_is_refused(client: Any, clock: FakeClock) -> None:
    otp = current_code(TOTP_SECRET, clock())
    clock.advance(60)
    late, _ = await login(client, username="oscar", otp=otp)
    assert late.status == 401


async def test_revoking_a_refresh_token_ends_its_family(client: Any) -> None:
    code, code_verifier = await code_for(client)
    tokens = await (await exchange(client, code, code_verifier)).json()
    revoked = await client.post(
        "/oauth/revoke",
        data={
            "token": tokens["refresh_token"],
            "token_type_hint": "refresh_token",
            "client_id": CLIENT_ID,
        },
    )
    assert revoked.status == 200 and revoked.headers["Cache-Control"] == "no-store"
    assert (await refresh(client, tokens["refresh_token"])).status == 400
    # Unknown tokens (and self-contained access tokens) are answered 200 as RFC 7009 asks.
    unknown = await client.post("/oauth/revoke", data={"token": "nope", "client_id": CLIENT_ID})
    assert unknown.status == 200


async def test_unsupported_grants_are_refused(client: Any) -> None:
    password = await client.post(
        "/oauth/token",
        data={
            "grant_type": "password",
            "username": "alice",
            "password": "x",
            "client_id": CLIENT_ID,
        },
    )
    assert password.status == 400
    assert (await password.json())["error"] == "unsupported_grant_type"
    not_form = await client.post("/oauth/token", json={"grant_type": "refresh_token"})
    assert not_form.status == 400
