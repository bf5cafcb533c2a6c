"""Oversized and slow requests, WebSocket caps, brute force and OAuth protocol attacks."""

from __future__ import annotations

import asyncio
import time
from typing import Any
from urllib.parse import parse_qs, urljoin, urlsplit

import aiohttp
import pytest

from tests.e2e.conftest import RunningNode
from tests.security.conftest import tls_client
from tests.security.helpers import raw_tls, read_all, sim_commands
from tests.support.oauth_client import login, parse_form, pkce_pair


async def test_a_declared_oversized_body_gets_413_before_it_is_sent(node: RunningNode) -> None:
    token = await node.token_for("anna")
    before = await sim_commands(node)
    reader, writer = await raw_tls(node, tls_client(node))
    writer.write(
        b"POST /api/v1/access-points/ap-a-entrance/open HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        + f"Authorization: Bearer {token}\r\n".encode()
        + b"Content-Type: application/json\r\nContent-Length: 10000000\r\n\r\n"
    )  # and not one byte of the body
    await writer.drain()
    answer = await read_all(reader, limit=5)
    writer.close()
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert await sim_commands(node) == before


async def test_a_chunked_body_growing_past_the_limit_gets_413(node: RunningNode) -> None:
    async def chunks() -> Any:
        for _ in range(100):
            yield b"x" * 4096

    async with node.http.post(
        f"{node.url}/oauth/token",
        data=chunks(),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    ) as resp:
        assert resp.status == 413


async def test_a_client_trickling_its_headers_is_cut_off(node: RunningNode) -> None:
    reader, writer = await raw_tls(node, tls_client(node))
    started = time.monotonic()
    closed_after = None
    for byte in b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"a" * 50:
        try:
            writer.write(bytes([byte]))
            await writer.drain()
        except (ConnectionError, OSError):
            closed_after = time.monotonic() - started
            break
        await asyncio.sleep(0.2)  # the attack: one byte every 200 ms
        if reader.at_eof():
            closed_after = time.monotonic() - started
            break
    if closed_after is None:
        assert await read_all(reader, limit=3) == b""
        closed_after = time.monotonic() - started
    writer.close()
    # Header deadline 1 s (+ the keep-alive check): 8 s only catches a missing deadline (the
    # trickle alone would last 10 s, and then the server would wait for more).
    assert closed_after < 8, closed_after


async def test_a_client_trickling_its_body_gets_408(node: RunningNode) -> None:
    reader, writer = await raw_tls(node, tls_client(node))
    writer.write(
        b"POST /oauth/token HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\ngrant"
    )
    await writer.drain()
    answer = await read_all(reader, limit=6)
    writer.close()
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]


async def test_websockets_are_capped_per_user_and_per_message(node: RunningNode) -> None:
    token = await node.token_for("anna")
    headers = {"Authorization": f"Bearer {token}"}
    first = await node.http.ws_connect(f"{node.url}/api/v1/ws", headers=headers)
    second = await node.http.ws_connect(f"{node.url}/api/v1/ws", headers=headers)
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await node.http.ws_connect(f"{node.url}/api/v1/ws", headers=headers)
    assert refused.value.status == 429
    await second.send_str("x" * 64 * 1024)  # over the 16 KiB frame cap
    msg = await second.receive(timeout=5)
    assert msg.type in (
        aiohttp.WSMsgType.CLOSE,
        aiohttp.WSMsgType.CLOSED,
        aiohttp.WSMsgType.CLOSING,
    )
    assert second.closed  # the server dropped it (1009, seen as 1006 when the TCP side wins)
    assert second.close_code in (aiohttp.WSCloseCode.MESSAGE_TOO_BIG, 1006)
    await second.close()
    third = await node.http.ws_connect(f"{node.url}/api/v1/ws", headers=headers)  # a slot freed
    await third.send_str("ping")
    assert (await third.receive(timeout=5)).data == "pong"
    await first.close()
    await third.close()


async def _authorize(node: RunningNode, **overrides: str) -> aiohttp.ClientResponse:
    _, challenge = pkce_pair()
    params = {
        "response_type": "code",
        "client_id": node.credentials["mobile_client_id"],
        "redirect_uri": node.credentials["redirect_uri"],
        "scope": "openid api",
        "state": "s",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    params.update(overrides)
    params = {k: v for k, v in params.items() if v != ""}
    return await node.http.get(f"{node.url}/oauth/authorize", params=params, allow_redirects=False)


async def test_pkce_plain_and_missing_challenge_are_refused(node: RunningNode) -> None:
    for overrides in (
        {"code_challenge_method": "plain"},
        {"code_challenge": "", "code_challenge_method": ""},
    ):
        resp = await _authorize(node, **overrides)
        location = resp.headers.get("Location", "")
        assert resp.status == 400 or "error=invalid_request" in location, overrides
        assert "code=" not in location


async def _code(node: RunningNode, username: str) -> tuple[str, str]:
    """A fresh authorization code and its verifier."""
    verifier, challenge = pkce_pair()
    params = {
        "response_type": "code",
        "client_id": node.credentials["mobile_client_id"],
        "redirect_uri": node.credentials["redirect_uri"],
        "scope": "openid api",
        "state": "s",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    authorize = f"{node.url}/oauth/authorize"
    async with node.http.get(authorize, params=params) as resp:
        form = parse_form(await resp.text())
    fields = {**form.inputs, "username": username, "password": node.resident(username)["password"]}
    async with node.http.post(
        urljoin(authorize, form.action or authorize), data=fields, allow_redirects=False
    ) as resp:
        location = resp.headers["Location"]
    return parse_qs(urlsplit(location).query)["code"][0], verifier


async def _redeem(node: RunningNode, code: str, verifier: str) -> tuple[int, dict[str, Any]]:
    async with node.http.post(
        f"{node.url}/oauth/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": node.credentials["redirect_uri"],
            "client_id": node.credentials["mobile_client_id"],
            "code_verifier": verifier,
        },
    ) as resp:
        return resp.status, await resp.json()


async def test_a_wrong_verifier_and_a_replayed_code_get_invalid_grant(node: RunningNode) -> None:
    code, verifier = await _code(node, "anna")
    status, body = await _redeem(node, code, pkce_pair()[0])  # the attacker's verifier
    assert (status, body["error"]) == (400, "invalid_grant")
    code, verifier = await _code(node, "anna")
    status, _ = await _redeem(node, code, verifier)
    assert status == 200
    status, body = await _redeem(node, code, verifier)
    assert (status, body["error"]) == (400, "invalid_grant")


async def _refresh(node: RunningNode, token: str) -> tuple[int, dict[str, Any]]:
    async with node.http.post(
        f"{node.url}/oauth/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": token,
            "client_id": node.credentials["mobile_client_id"],
        },
    ) as resp:
        return resp.status, await resp.json()


async def test_reusing_a_refresh_token_revokes_the_whole_family(node: RunningNode) -> None:
    code, verifier = await _code(node, "boris")
    _, tokens = await _redeem(node, code, verifier)
    status, rotated = await _refresh(node, tokens["refresh_token"])
    assert status == 200
    status, body = await _refresh(node, tokens["refresh_token"])  # the thief replays the old one
    assert (status, body["error"]) == (400, "invalid_grant")
    status, body = await _refresh(node, rotated["refresh_token"])  # the family is gone
    assert (status, body["error"]) == (400, "invalid_grant")


async def test_a_totp_code_works_once(node: RunningNode) -> None:
    op = node.credentials["operator"]
    args = {
        "client_id": node.credentials["mobile_client_id"],
        "redirect_uri": node.credentials["redirect_uri"],
        "username": op["username"],
        "password": op["password"],
    }
    await login(node.http, node.url, **args, totp_secret=op["totp_secret"])
    with pytest.raises(AssertionError, match="401"):
        await login(node.http, node.url, **args, totp_secret=op["totp_secret"])


async def _try_password(node: RunningNode, username: str, password: str) -> aiohttp.ClientResponse:
    _, challenge = pkce_pair()
    authorize = f"{node.url}/oauth/authorize"
    params = {
        "response_type": "code",
        "client_id": node.credentials["mobile_client_id"],
        "redirect_uri": node.credentials["redirect_uri"],
        "scope": "openid api",
        "state": "s",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    async with node.http.get(authorize, params=params) as resp:
        form = parse_form(await resp.text())
    fields = {**form.inputs, "username": username, "password": password}
    resp = await node.http.post(authorize, data=fields, allow_redirects=False)
    await resp.read()
    return resp


async def test_password_guessing_is_throttled_per_account_with_429(node: RunningNode) -> None:
    for _ in range(5):
        assert (await _try_password(node, "vera", "guess")).status == 401
    locked = await _try_password(node, "vera", node.resident("vera")["password"])
    assert locked.status == 429
    assert int(locked.headers["Retry-After"]) > 0
    assert "Location" not in locked.headers  # no code, even with the right password
    assert (await _try_password(node, "anna", node.resident("anna")["password"])).status == 303


async def test_guessing_codes_at_the_token_endpoint_is_throttled_per_ip(node: RunningNode) -> None:
    statuses = [(await _redeem(node, f"guess-{n}", pkce_pair()[0]))[0] for n in range(52)]
    assert statuses[:50] == [400] * 50  # PROPDEV_AUTH_FAILURES_PER_IP=50 in this suite
    assert statuses[-1] == 429
    async with node.http.post(f"{node.url}/oauth/token", data={"grant_type": "x"}) as resp:
        assert resp.status == 429 and int(resp.headers["Retry-After"]) > 0
