"""Account self-service against a running node: password change, sessions, reset, activation.

Each sign-in is a refresh-token family (a session); signing one out must stop its refresh token
(``invalid_grant``) and its access token (401) at once, and leave the others alone.
"""

from __future__ import annotations

import json
from typing import Any

import pyotp

from propdev.accounts import OutboxNotifier
from tests.e2e.conftest import RunningNode
from tests.support.eventually import eventually
from tests.support.oauth_client import login

NEW = "a brand new passphrase"
NEWCOMER = "ksenia.new"


class Session:
    """One sign-in of a resident: its tokens, kept up to date on refresh."""

    def __init__(self, node: RunningNode, tokens: dict[str, Any]) -> None:
        self.node = node
        self.access = str(tokens["access_token"])
        self.refresh_token = str(tokens["refresh_token"])

    async def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        return await call(self.node, method, path, body, token=self.access)

    async def refresh(self) -> tuple[int, dict[str, Any]]:
        async with self.node.http.post(
            f"{self.node.url}/oauth/token",
            data={
                "grant_type": "refresh_token",
                "refresh_token": self.refresh_token,
                "client_id": self.node.credentials["mobile_client_id"],
            },
        ) as resp:
            body = dict(await resp.json())
        if resp.status == 200:
            self.access, self.refresh_token = body["access_token"], body["refresh_token"]
        return resp.status, body


async def call(
    node: RunningNode, method: str, path: str, body: Any = None, *, token: str | None = None
) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    data = None if body is None else json.dumps(body)
    if data is not None:
        headers["Content-Type"] = "application/json"
    async with node.http.request(method, node.url + path, data=data, headers=headers) as resp:
        text = await resp.text()
        return resp.status, json.loads(text) if text else None


async def sign_in(node: RunningNode, username: str, password: str) -> Session:
    tokens = await login(
        node.http,
        node.url,
        client_id=node.credentials["mobile_client_id"],
        redirect_uri=node.credentials["redirect_uri"],
        username=username,
        password=password,
    )
    return Session(node, tokens)


def first_resident(node: RunningNode) -> tuple[str, str]:
    resident = node.credentials["residents"][0]
    return str(resident["username"]), str(resident["password"])


async def test_changing_the_password_signs_out_the_other_session_at_once_and_keeps_this_one(
    node: RunningNode,
) -> None:
    username, password = first_resident(node)
    here = await sign_in(node, username, password)
    there = await sign_in(node, username, password)
    assert (await there.call("GET", "/api/v1/me"))[0] == 200

    status, problem = await here.call(
        "POST", "/api/v1/me/password", {"current_password": password, "new_password": "password1"}
    )
    assert (status, problem["type"].rsplit("/", 1)[1], problem["field"]) == (
        400,
        "weak-password",
        "new_password",
    )
    status, problem = await here.call(
        "POST", "/api/v1/me/password", {"current_password": "wrong-one-here", "new_password": NEW}
    )
    assert (status, problem["type"].rsplit("/", 1)[1]) == (403, "wrong-password")
    assert (await there.call("GET", "/api/v1/me"))[0] == 200  # nothing changed

    status, _ = await here.call(
        "POST", "/api/v1/me/password", {"current_password": password, "new_password": NEW}
    )
    assert status == 204
    assert (await there.call("GET", "/api/v1/me"))[0] == 401
    status, body = await there.refresh()
    assert (status, body["error"]) == (400, "invalid_grant")
    assert (await here.call("GET", "/api/v1/me"))[0] == 200
    assert (await here.refresh())[0] == 200
    assert (await here.call("GET", "/api/v1/me"))[0] == 200
    await sign_in(node, username, NEW)  # the new password signs in


async def test_sessions_are_listed_one_per_sign_in_and_one_can_be_signed_out(
    node: RunningNode,
) -> None:
    username, password = first_resident(node)
    first = await sign_in(node, username, password)
    second = await sign_in(node, username, password)
    status, sessions = await second.call("GET", "/api/v1/me/sessions")
    assert status == 200 and len(sessions) == 2, sessions
    client_id = node.credentials["mobile_client_id"]
    assert all(s["client_id"] == client_id for s in sessions)
    assert all(s["created_at"] <= s["last_used_at"] for s in sessions)
    [current] = [s for s in sessions if s["current"]]
    [other] = [s for s in sessions if not s["current"]]
    status, seen_by_first = await first.call("GET", "/api/v1/me/sessions")
    assert {s["id"] for s in seen_by_first if s["current"]} == {other["id"]}

    neighbour_name, neighbour_password = (
        str(node.credentials["residents"][1]["username"]),
        str(node.credentials["residents"][1]["password"]),
    )
    neighbour = await sign_in(node, neighbour_name, neighbour_password)
    status, _ = await neighbour.call("DELETE", f"/api/v1/me/sessions/{other['id']}")
    assert status == 404
    assert (await first.call("GET", "/api/v1/me"))[0] == 200

    status, _ = await second.call("DELETE", f"/api/v1/me/sessions/{other['id']}")
    assert status == 204
    status, body = await first.refresh()
    assert (status, body["error"]) == (400, "invalid_grant")
    assert (await first.call("GET", "/api/v1/me"))[0] == 401
    status, left = await second.call("GET", "/api/v1/me/sessions")
    assert [s["id"] for s in left] == [current["id"]]
    assert (await second.refresh())[0] == 200


async def test_a_password_reset_by_code_from_the_outbox_signs_out_every_session(
    node: RunningNode,
) -> None:
    username, password = first_resident(node)
    session = await sign_in(node, username, password)
    outbox = OutboxNotifier(node.settings.data_dir / "outbox.jsonl")
    for name in ("nobody-here", username):
        status, body = await call(node, "POST", "/api/v1/password-reset", {"username": name})
        assert (status, body) == (202, None)

    async def sent() -> list[str]:
        return [m.code for m in outbox.messages() if m.username == username]

    [code] = await eventually(sent, within=10, what="the reset code in the outbox")
    assert len(outbox.messages()) == 1  # nothing for an unknown username
    wrong = f"{(int(code) + 1) % 10**8:08d}"
    confirm = {"username": username, "code": wrong, "new_password": NEW}
    status, problem = await call(node, "POST", "/api/v1/password-reset/confirm", confirm)
    assert (status, problem["type"].rsplit("/", 1)[1]) == (400, "invalid-code")
    status, _ = await call(
        node, "POST", "/api/v1/password-reset/confirm", {**confirm, "code": code}
    )
    assert status == 204
    assert (await session.call("GET", "/api/v1/me"))[0] == 401
    assert (await session.refresh())[0] == 400
    await sign_in(node, username, NEW)
    status, problem = await call(
        node,
        "POST",
        "/api/v1/password-reset/confirm",
        {**confirm, "code": code, "new_password": "another passphrase"},
    )
    assert (status, problem["type"].rsplit("/", 1)[1]) == (400, "invalid-code")  # once


async def test_an_invited_resident_activates_once_with_the_code_of_the_invitation(
    node: RunningNode,
) -> None:
    op = node.credentials["operator"]
    operator = await login(
        node.http,
        node.url,
        client_id=node.credentials["mobile_client_id"],
        redirect_uri=node.credentials["redirect_uri"],
        username=op["username"],
        password=op["password"],
        otp=pyotp.TOTP(op["totp_secret"]).now(),
    )
    token = str(operator["access_token"])
    status, apartments = await call(node, "GET", "/admin/api/v1/apartments", token=token)
    assert status == 200 and apartments, apartments
    apartment = apartments[0]["id"]
    invitation = {"username": NEWCOMER, "full_name": "Ksenia N", "apartment_id": apartment}
    status, invited = await call(node, "POST", "/admin/api/v1/residents", invitation, token=token)
    assert status == 201, invited
    assert invited["temporary_password"] and invited["activation_code"]
    body = {"username": NEWCOMER, "activation_code": invited["activation_code"], "password": NEW}
    status, answer = await call(node, "POST", "/api/v1/activation", body)
    assert (status, answer) == (200, {})
    await sign_in(node, NEWCOMER, NEW)
    status, problem = await call(node, "POST", "/api/v1/activation", body)
    assert (status, problem["type"].rsplit("/", 1)[1]) == (400, "invalid-code")


async def test_unknown_fields_are_refused_with_400_and_change_nothing(node: RunningNode) -> None:
    username, password = first_resident(node)
    session = await sign_in(node, username, password)
    cases = [
        ("/api/v1/me/password", {"current_password": password, "new_password": NEW, "x": 1}),
        ("/api/v1/password-reset", {"username": username, "email": "a@b.c"}),
        ("/api/v1/password-reset/confirm", {"username": username, "code": "1", "x": 1}),
        ("/api/v1/activation", {"username": username, "activation_code": "x", "x": "y"}),
    ]
    for path, body in cases:
        status, problem = await session.call("POST", path, body)
        assert (status, problem["field"]) == (400, "x" if "x" in body else "email"), path
    await sign_in(node, username, password)
