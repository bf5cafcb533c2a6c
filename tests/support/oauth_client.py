"""What the mobile app does to log in: authorization code + PKCE through the HTML form."""

from __future__ import annotations

import base64
import hashlib
import secrets
from html.parser import HTMLParser
from typing import Any
from urllib.parse import parse_qs, urljoin, urlsplit

import aiohttp
import pyotp


class _FormParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.action: str | None = None
        self.method = "get"
        self.inputs: dict[str, str] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form" and self.action is None:
            self.action = a.get("action", "")
            self.method = a.get("method", "get").lower()
        elif tag == "input" and "name" in a:
            self.inputs[a["name"]] = a.get("value", "")


def parse_form(html: str) -> _FormParser:
    parser = _FormParser()
    parser.feed(html)
    return parser


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
    return verifier, challenge.rstrip(b"=").decode()


async def login(
    session: aiohttp.ClientSession,
    base_url: str,
    *,
    client_id: str,
    redirect_uri: str,
    username: str,
    password: str,
    totp_secret: str | None = None,
    otp: str | None = None,
    scope: str = "openid profile api",
) -> dict[str, Any]:
    """Log in through the form and return the token response. ``otp`` (a recovery code, say)
    is typed in the one-time code field as is; else a TOTP code of ``totp_secret``."""
    code, verifier = await authorization_code(
        session,
        base_url,
        client_id=client_id,
        redirect_uri=redirect_uri,
        username=username,
        password=password,
        totp_secret=totp_secret,
        otp=otp,
        scope=scope,
    )
    status, body = await redeem(
        session, base_url, code, verifier, client_id=client_id, redirect_uri=redirect_uri
    )
    assert status == 200, body
    return body


async def authorization_code(
    session: aiohttp.ClientSession,
    base_url: str,
    *,
    client_id: str,
    redirect_uri: str,
    username: str,
    password: str,
    totp_secret: str | None = None,
    otp: str | None = None,
    scope: str = "openid profile api",
) -> tuple[str, str]:
    """Log in through the form; return the code the redirect carried and its PKCE verifier."""
    verifier, challenge = pkce_pair()
    state = secrets.token_urlsafe(16)
    params = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": redirect_uri,
        "scope": scope,
        "state": state,
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        "nonce": secrets.token_urlsafe(16),
    }
    authorize = f"{base_url}/oauth/authorize"
    async with session.get(authorize, params=params) as resp:
        assert resp.status == 200, await resp.text()
        form = parse_form(await resp.text())
    fields = dict(form.inputs)
    fields["username"] = username
    fields["password"] = password
    if otp is not None:
        fields["otp"] = otp
    else:
        fields["otp"] = pyotp.TOTP(totp_secret).now() if totp_secret else ""
    action = urljoin(authorize, form.action or authorize)
    async with session.post(action, data=fields, allow_redirects=False) as resp:
        assert resp.status in (302, 303), (resp.status, await resp.text())
        location = resp.headers["Location"]
    query = parse_qs(urlsplit(location).query)
    assert location.startswith(redirect_uri), location
    assert query["state"] == [state]
    return query["code"][0], verifier


async def redeem(
    session: aiohttp.ClientSession,
    base_url: str,
    code: str,
    verifier: str,
    *,
    client_id: str,
    redirect_uri: str,
) -> tuple[int, dict[str, Any]]:
    """Exchange ``code`` at the token endpoint: (status, body)."""
    async with session.post(
        f"{base_url}/oauth/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
            "client_id": client_id,
            "code_verifier": verifier,
        },
    ) as resp:
        return resp.status, dict(await resp.json())
