"""Drive the login form and the token endpoint like the mobile app would."""

from __future__ import annotations

from html.parser import HTMLParser
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.unit.security.conftest import CLIENT_ID, PASSWORD, REDIRECT_URI, pkce_pair


class _Inputs(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.inputs: dict[str, dict[str, str]] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "input":
            a = {k: v or "" for k, v in attrs}
            self.inputs[a["name"]] = a


def form_inputs(html: str) -> dict[str, dict[str, str]]:
    parser = _Inputs()
    parser.feed(html)
    return parser.inputs


def hidden_fields(html: str) -> dict[str, str]:
    return {k: a["value"] for k, a in form_inputs(html).items() if a.get("type") == "hidden"}


def query(location: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def authorize_params(challenge: str, **extra: str) -> dict[str, str]:
    params = {
        "response_type": "code",
        "client_id": CLIENT_ID,
        "redirect_uri": REDIRECT_URI,
        "scope": "openid api",
        "state": "st-123",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        "nonce": "nonce-1",
    }
    params.update(extra)
    return params


async def login(
    client: Any, username: str = "alice", password: str = PASSWORD, otp: str = ""
) -> tuple[Any, str]:
    """Run GET + POST /oauth/authorize; return (POST response, code_verifier)."""
    verifier, challenge = pkce_pair()
    page = await client.get("/oauth/authorize", params=authorize_params(challenge))
    assert page.status == 200, await page.text()
    fields = hidden_fields(await page.text())
    fields.update(username=username, password=password, otp=otp)
    response = await client.post("/oauth/authorize", data=fields, allow_redirects=False)
    return response, verifier


async def code_for(client: Any, **kw: str) -> tuple[str, str]:
    response, verifier = await login(client, **kw)
    assert response.status == 303, await response.text()
    return query(response.headers["Location"])["code"], verifier


async def exchange(client: Any, code: str, verifier: str, **extra: str) -> Any:
    data = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": REDIRECT_URI,
        "client_id": CLIENT_ID,
        "code_verifier": verifier,
    }
    data.update(extra)
    return await client.post("/oauth/token", data=data)


async def refresh(client: Any, refresh_token: str) -> Any:
    return await client.post(
        "/oauth/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": refresh_token,
            "client_id": CLIENT_ID,
        },
    )
