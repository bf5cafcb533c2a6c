"""Operators' TOTP recovery codes: generation, keyed hashes, single use, the login form."""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import re
import threading
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from propdev.admin_cli import recovery_codes_command
from propdev.config.settings import Settings
from propdev.security import (
    TokenVerifier,
    create_user,
    new_recovery_codes,
    open_vault,
    remaining_recovery_codes,
    store_recovery_codes,
)
from propdev.security.recovery import ALPHABET, normalize_code, use_recovery_code
from propdev.storage import Database, migrate
from tests.unit.security.conftest import PASSWORD, TOTP_SECRET, FakeClock
from tests.unit.security.helpers import code_for, exchange, login

CODE = re.compile(rf"^[{ALPHABET}]{{5}}-[{ALPHABET}]{{5}}$")


def test_ten_distinct_codes_of_fifty_random_bits_are_generated() -> None:
    codes = new_recovery_codes()
    assert len(codes) == 10 and len(set(codes)) == 10
    assert all(CODE.match(c) for c in codes), codes
    assert len(set(ALPHABET)) == 32  # 10 symbols x 5 bits = 50 bits per code


def test_codes_are_forgiving_about_case_spaces_and_lookalikes_but_not_totp_codes() -> None:
    assert normalize_code(" ABCDE-FGH1K ") == "abcdefgh1k"
    assert normalize_code("abcde fghlk") == "abcdefgh1k"  # l read as 1
    assert normalize_code("0o0o0-uuuuu") == "00000vvvvv"
    assert normalize_code("123456") is None  # a TOTP code
    assert normalize_code("abcde-fgh") is None
    assert normalize_code("abcde-fgh!k") is None


async def test_only_keyed_per_user_hashes_are_stored(db: Database, users: dict[str, str]) -> None:
    codes = new_recovery_codes()
    await store_recovery_codes(db, users["oscar"], codes)
    await store_recovery_codes(db, users["alice"], codes)
    rows = await db.fetch_all("SELECT user_id, code_hash, used_at FROM user_recovery_codes")
    assert len(rows) == 20 and all(r["used_at"] is None for r in rows)
    stored = " ".join(str(r["code_hash"]) for r in rows)
    for code in codes:
        assert normalize_code(code) not in stored and code not in stored
    # The same code hashes differently for two users: one table scan says nothing.
    by_user = {u: {r["code_hash"] for r in rows if r["user_id"] == u} for u in users.values()}
    assert not by_user[users["oscar"]] & by_user[users["alice"]]


async def test_a_code_works_once_and_a_new_set_replaces_the_old_one(
    db: Database, users: dict[str, str]
) -> None:
    oscar = users["oscar"]
    first = new_recovery_codes()
    await store_recovery_codes(db, oscar, first)
    assert await asyncio.to_thread(use_recovery_code, db, oscar, first[0].upper(), now=1.0)
    assert not await asyncio.to_thread(use_recovery_code, db, oscar, first[0], now=2.0)
    assert not await asyncio.to_thread(use_recovery_code, db, users["alice"], first[1], now=2.0)
    assert await remaining_recovery_codes(db, oscar) == 9
    # Storing the same set again changes nothing: the used code stays used.
    await store_recovery_codes(db, oscar, first)
    assert not await asyncio.to_thread(use_recovery_code, db, oscar, first[0], now=3.0)
    assert await remaining_recovery_codes(db, oscar) == 9
    second = new_recovery_codes()
    await store_recovery_codes(db, oscar, second)
    assert await remaining_recovery_codes(db, oscar) == 10
    assert not await asyncio.to_thread(use_recovery_code, db, oscar, first[1], now=4.0)
    assert await asyncio.to_thread(use_recovery_code, db, oscar, second[1], now=5.0)


async def test_of_many_concurrent_uses_of_one_code_exactly_one_passes(
    db: Database, users: dict[str, str]
) -> None:
    codes = new_recovery_codes()
    await store_recovery_codes(db, users["oscar"], codes)
    racers = 8
    barrier = threading.Barrier(racers)

    def race() -> bool:
        barrier.wait(timeout=30)  # all threads start their UPDATE together
        return use_recovery_code(db, users["oscar"], codes[3], now=10.0)

    loop = asyncio.get_running_loop()
    # A pool of its own: the default one may have fewer threads than the barrier waits for.
    with concurrent.futures.ThreadPoolExecutor(max_workers=racers) as pool:
        results = await asyncio.gather(*(loop.run_in_executor(pool, race) for _ in range(racers)))
    assert sorted(results) == [False] * (racers - 1) + [True]
    assert await remaining_recovery_codes(db, users["oscar"]) == 9


async def test_a_recovery_code_in_the_otp_field_signs_in_once_with_mfa_in_amr(
    client: Any, db: Database, users: dict[str, str], verifier: TokenVerifier
) -> None:
    codes = new_recovery_codes()
    await store_recovery_codes(db, users["oscar"], codes)
    with capture_logs() as logs:
        code, code_verifier = await code_for(client, username="oscar", otp=codes[0])
    tokens = await (await exchange(client, code, code_verifier)).json()
    claims = verifier.verify(tokens["access_token"])
    assert claims.amr == ("pwd", "mfa") and claims.mfa and claims.roles == {"operator"}
    used = [e for e in logs if e["event"] == "recovery_code_used"]
    assert used == [
        {
            "event": "recovery_code_used",
            "user_id": users["oscar"],
            "remaining": 9,
            "log_level": "warning",
        }
    ]
    assert codes[0] not in json.dumps(logs, default=str)

    again, _ = await login(client, username="oscar", otp=codes[0])
    assert again.status == 401
    unknown, _ = await login(client, username="oscar", otp=new_recovery_codes(1)[0])
    assert unknown.status == 401
    # The password is still needed.
    wrong_password, _ = await login(client, username="oscar", password="nope", otp=codes[1])
    assert wrong_password.status == 401
    assert await remaining_recovery_codes(db, users["oscar"]) == 9


async def test_recovery_codes_mean_nothing_for_an_account_without_totp(
    client: Any, db: Database, users: dict[str, str], verifier: TokenVerifier
) -> None:
    codes = new_recovery_codes()
    await store_recovery_codes(db, users["alice"], codes)
    code, code_verifier = await code_for(client, username="alice", otp=codes[0])
    tokens = await (await exchange(client, code, code_verifier)).json()
    assert verifier.verify(tokens["access_token"]).amr == ("pwd",)
    assert await remaining_recovery_codes(db, users["alice"]) == 10


async def test_wrong_recovery_codes_count_as_failed_logins(
    client: Any, db: Database, users: dict[str, str], clock: FakeClock
) -> None:
    codes = new_recovery_codes()
    await store_recovery_codes(db, users["oscar"], codes)
    for _ in range(5):
        response, _ = await login(client, username="oscar", otp=new_recovery_codes(1)[0])
        assert response.status == 401
    locked, _ = await login(client, username="oscar", otp=codes[0])
    assert locked.status == 429
    assert await remaining_recovery_codes(db, users["oscar"]) == 10


async def test_the_cli_prints_ten_codes_once_and_replaces_the_earlier_set(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], logs_captured: list[dict[str, Any]]
) -> None:
    settings = Settings(data_dir=tmp_path / "node").resolved()
    settings.data_dir.mkdir(parents=True)
    db = Database(settings.database_url)
    try:
        await migrate(db)
        await open_vault(settings, db)
        oscar = await create_user(
            db, username="oscar", password=PASSWORD, roles=["operator"], totp_secret=TOTP_SECRET
        )
        await create_user(db, username="alice", password=PASSWORD, roles=["resident"])
    finally:
        await db.close()

    assert await recovery_codes_command(settings, "Oscar") == 0
    first = json.loads(capsys.readouterr().out)["recovery_codes"]
    assert await recovery_codes_command(settings, "oscar") == 0
    second = json.loads(capsys.readouterr().out)["recovery_codes"]
    assert len(first) == len(second) == 10 and not set(first) & set(second)
    assert await recovery_codes_command(settings, "alice") == 1  # no TOTP enrolled
    assert await recovery_codes_command(settings, "nobody") == 1
    capsys.readouterr()

    db = Database(settings.database_url)
    try:
        await open_vault(settings, db)
        assert await remaining_recovery_codes(db, oscar) == 10
        assert not await asyncio.to_thread(use_recovery_code, db, oscar, first[0], now=1.0)
        assert await asyncio.to_thread(use_recovery_code, db, oscar, second[0], now=1.0)
    finally:
        await db.close()
