from __future__ import annotations

import pytest

from propdev.security import (
    create_user,
    get_user,
    hash_password,
    register_public_client,
    register_web_app_client,
    set_password,
    verify_password,
)
from propdev.security.totp import matching_step
from propdev.storage import Database
from tests.unit.security.conftest import TOTP_SECRET


def test_passwords_hash_with_argon2id_and_verify() -> None:
    hashed = hash_password("s3cret")
    assert hashed.startswith("$argon2id$")
    assert verify_password(hashed, "s3cret")
    assert not verify_password(hashed, "S3cret")
    assert not verify_password(None, "s3cret")
    assert not verify_password("not a hash", "s3cret")


async def test_create_user_is_idempotent_and_changes_nothing(db: Database) -> None:
    first = await create_user(db, username="Bob", password="one", roles=["resident"])
    again = await create_user(db, username="bob ", password="two", roles=["operator"])
    assert again == first
    user = await get_user(db, first)
    assert user is not None and user.username == "bob" and user.roles == ("resident",)
    row = await db.fetch_one("SELECT password_hash FROM users WHERE id = :id", id=first)
    assert row is not None and verify_password(row["password_hash"], "one")
    await set_password(db, first, "two")
    row = await db.fetch_one("SELECT password_hash FROM users WHERE id = :id", id=first)
    assert row is not None and verify_password(row["password_hash"], "two")


async def test_create_user_refuses_unknown_roles(db: Database) -> None:
    with pytest.raises(ValueError):
        await create_user(db, username="x", password="p", roles=["root"])


@pytest.mark.parametrize(
    "uri",
    ["javascript:alert(1)", "data:text/html,x", "https://app.example/cb#frag", "http://evil/cb"],
)
async def test_dangerous_redirect_uris_cannot_be_registered(db: Database, uri: str) -> None:
    with pytest.raises(ValueError):
        await register_public_client(db, "c", client_name="c", redirect_uris=[uri], scope="api")


async def test_client_registration_is_idempotent(db: Database) -> None:
    for _ in range(2):
        await register_public_client(
            db, "c", client_name="C", redirect_uris=["com.x:/cb"], scope="api"
        )
    rows = await db.fetch_all("SELECT client_id FROM oauth_clients")
    assert [r["client_id"] for r in rows] == ["c"]


async def test_the_web_app_client_is_public_and_follows_the_public_url(db: Database) -> None:
    await register_web_app_client(db, "https://127.0.0.1:8443")
    await register_web_app_client(db, "https://homes.example/")  # the URL changed: replaced
    rows = await db.fetch_all("SELECT * FROM oauth_clients")
    assert len(rows) == 1
    row = rows[0]
    assert row["client_id"] == "resident-web"
    assert bool(row["public"]) and row["token_endpoint_auth_method"] == "none"
    assert row["redirect_uris"] == '["https://homes.example/app/"]'
    assert row["grant_types"] == "authorization_code refresh_token"


def test_totp_accepts_one_step_either_side_and_no_more() -> None:
    import pyotp

    totp = pyotp.TOTP(TOTP_SECRET)
    now = 1_800_000_000
    step = now // 30
    assert matching_step(TOTP_SECRET, totp.generate_otp(step), now) == step
    assert matching_step(TOTP_SECRET, totp.generate_otp(step - 1), now) == step - 1
    assert matching_step(TOTP_SECRET, totp.generate_otp(step + 1), now) == step + 1
    assert matching_step(TOTP_SECRET, totp.generate_otp(step - 2), now) is None
    assert matching_step(TOTP_SECRET, "12345", now) is None
    assert matching_step(TOTP_SECRET, "abcdef", now) is None
