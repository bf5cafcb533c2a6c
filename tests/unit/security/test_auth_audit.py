"""``OAuthServer.login`` audits every outcome as ``auth.login``: the denial reasons the form
never shows (``bad_otp``, ``disabled``, ``throttled:*``), the attempted username in ``personal``
only, never the password."""

from __future__ import annotations

import json

import pyotp

from propdev.security import (
    LoginFailedError,
    LoginThrottledError,
    OAuthServer,
    audit_opener,
    vault_of,
)
from propdev.storage import Database
from propdev.storage.audit import AuditLog
from tests.unit.security.conftest import PASSWORD, TOTP_SECRET, FakeClock

ADDRESS = "192.0.2.7"


async def attempt(oauth: OAuthServer, username: str, password: str, otp: str = "") -> str:
    """The login's outcome: ``ok``, or the error class's name."""
    try:
        await oauth.login(username, password, otp, remote=ADDRESS, client_id="mobile-app")
    except LoginFailedError as exc:
        return type(exc).__name__
    return "ok"


async def test_every_sign_in_outcome_is_an_entry_with_its_reason(
    oauth: OAuthServer, db: Database, users: dict[str, str], clock: FakeClock
) -> None:
    code = pyotp.TOTP(TOTP_SECRET).at(clock())
    assert (
        await attempt(oauth, "oscar", PASSWORD, "000000" if code != "000000" else "111111") != "ok"
    )
    assert await attempt(oauth, "oscar", PASSWORD, code) == "ok"
    await db.execute(
        "UPDATE users SET password_hash = '!moved-out' WHERE id = :u", u=users["alice"]
    )
    assert await attempt(oauth, "alice", PASSWORD) == "LoginFailedError"
    for _ in range(4):  # with the first, the pair's five free failures; then its back-off
        await attempt(oauth, "alice", "wrong password")
    assert await attempt(oauth, "alice", PASSWORD) == "LoginThrottledError"

    entries = await AuditLog(db).page(action="auth.login", open_personal=audit_opener(vault_of(db)))
    oscar, alice = f"operator:{users['oscar']}", f"user:{users['alice']}"
    assert [(e["actor"], e["decision"], e["reason"]) for e in entries] == [
        (oscar, "denied", "bad_otp"),
        (oscar, "granted", "password+otp"),
        (alice, "denied", "disabled"),
        *[(alice, "denied", "disabled")] * 4,
        (alice, "denied", "throttled:account"),
    ]
    assert {e["subject"] for e in entries} == {users["oscar"], users["alice"]}
    assert all(
        e["personal"]
        == {"username": e["personal"]["username"], "client_id": "mobile-app", "address": ADDRESS}
        for e in entries
    )
    assert PASSWORD not in json.dumps(entries) and "wrong password" not in json.dumps(entries)


def test_a_throttled_login_says_whose_failures_in_its_reason() -> None:
    throttled = LoginThrottledError(5.0, "address")
    assert (throttled.reason, throttled.user_id) == ("throttled:address", None)
