"""OpenID Connect Core deviations an Authlib relying party and hand probes found: userinfo over
POST (§5.3.1), ``prompt=none`` (§3.1.2.1), request objects (§6), discovery's claims."""

from __future__ import annotations

from typing import Any

import pytest

from tests.unit.security.conftest import ISSUER, REDIRECT_URI, pkce_pair
from tests.unit.security.helpers import authorize_params, code_for, exchange, query


async def _access_token(client: Any) -> str:
    code, verifier = await code_for(client)
    tokens = await (await exchange(client, code, verifier)).json()
    return str(tokens["access_token"])


async def test_userinfo_answers_post_as_it_answers_get(client: Any) -> None:
    token = await _access_token(client)
    bearer = {"Authorization": f"Bearer {token}"}
    got = await client.get("/oauth/userinfo", headers=bearer)
    posted = await client.post("/oauth/userinfo", headers=bearer)
    in_body = await client.post("/oauth/userinfo", data={"access_token": token})
    assert (got.status, posted.status, in_body.status) == (200, 200, 200)
    info = await got.json()
    assert info["preferred_username"] == "alice"
    assert await posted.json() == info
    assert await in_body.json() == info


async def test_userinfo_over_post_without_a_token_or_with_two_is_refused(client: Any) -> None:
    token = await _access_token(client)
    none = await client.post("/oauth/userinfo")
    assert none.status == 401
    assert none.headers["WWW-Authenticate"].startswith("Bearer")
    both = await client.post(
        "/oauth/userinfo",
        data={"access_token": token},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert (both.status, (await both.json())["error"]) == (400, "invalid_request")


async def test_prompt_none_redirects_with_login_required_and_the_state(client: Any) -> None:
    _, challenge = pkce_pair()
    response = await client.get(
        "/oauth/authorize",
        params=authorize_params(challenge, prompt="none"),
        allow_redirects=False,
    )
    assert response.status == 303, await response.text()
    assert response.headers["Location"].startswith(REDIRECT_URI + "?")
    back = query(response.headers["Location"])
    assert (back["error"], back["state"], back["iss"]) == ("login_required", "st-123", ISSUER)
    assert "code" not in back


async def test_prompt_none_with_another_value_is_an_invalid_request(client: Any) -> None:
    _, challenge = pkce_pair()
    response = await client.get(
        "/oauth/authorize",
        params=authorize_params(challenge, prompt="none login"),
        allow_redirects=False,
    )
    assert response.status == 303
    assert query(response.headers["Location"])["error"] == "invalid_request"


async def test_prompt_login_shows_the_form(client: Any) -> None:
    _, challenge = pkce_pair()
    response = await client.get(
        "/oauth/authorize", params=authorize_params(challenge, prompt="login")
    )
    assert response.status == 200
    assert 'name="password"' in await response.text()


@pytest.mark.parametrize(
    ("name", "error"),
    [("request", "request_not_supported"), ("request_uri", "request_uri_not_supported")],
)
async def test_request_objects_are_refused_with_an_error_redirect(
    client: Any, name: str, error: str
) -> None:
    _, challenge = pkce_pair()
    value = "eyJhbGciOiJub25lIn0.e30." if name == "request" else "https://rp.example/req/1"
    # The request object could carry the parameters the outer request lacks: refused first.
    params = {k: v for k, v in authorize_params(challenge, **{name: value}).items()}
    del params["code_challenge"]
    response = await client.get("/oauth/authorize", params=params, allow_redirects=False)
    assert response.status == 303, await response.text()
    assert response.headers["Location"].startswith(REDIRECT_URI + "?")
    back = query(response.headers["Location"])
    assert (back["error"], back["state"]) == (error, "st-123")


async def test_a_request_object_for_an_unchecked_redirect_uri_gets_the_error_page(
    client: Any,
) -> None:
    _, challenge = pkce_pair()
    params = authorize_params(challenge, request="x.y.z", redirect_uri="https://evil.example/")
    response = await client.get("/oauth/authorize", params=params, allow_redirects=False)
    assert response.status == 400
    assert "Location" not in response.headers


async def test_discovery_names_its_claims_and_what_it_does_not_support(client: Any) -> None:
    metadata = await (await client.get("/.well-known/openid-configuration")).json()
    assert {"sub", "name", "phone_number", "preferred_username", "roles", "amr"} <= set(
        metadata["claims_supported"]
    )
    assert metadata["request_parameter_supported"] is False
    assert metadata["request_uri_parameter_supported"] is False
    assert metadata["prompt_values_supported"] == ["none", "login"]
