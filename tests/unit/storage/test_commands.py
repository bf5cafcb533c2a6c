"""Open commands, their lifecycle steps, the passage's command, and the idempotency answers:
written in a unit or a transaction, read back whole."""

from __future__ import annotations

import time
from collections.abc import Awaitable
from typing import Any

from propdev.storage import Database, UnitConnection
from propdev.storage.commands import (
    IDEMPOTENCY_WINDOW,
    Commands,
    add_steps,
    passage_candidate,
    set_status,
    sync_add_steps,
    sync_put_answer,
    sync_put_command,
)


def put(
    db: Database,
    command_id: str,
    *,
    status: str = "confirmed",
    at: float = 100.0,
    ap: str = "ap-1",
    vendor: str | None = None,
    reason: str = "",
) -> Awaitable[None]:
    return db.unit(
        lambda conn: sync_put_command(
            conn,
            command_id=command_id,
            access_point_id=ap,
            user_id="u1",
            status=status,
            reason=reason,
            at=at,
            vendor_command_id=vendor,
        )
    )


async def test_a_command_is_stored_whole_and_an_update_keeps_its_creation_and_vendor_id(
    db: Database,
) -> None:
    await put(db, "c1", status="accepted", at=100.0, vendor="v-1")
    commands = Commands(db)
    assert await commands.get("c1") == {
        "id": "c1",
        "access_point_id": "ap-1",
        "user_id": "u1",
        "status": "accepted",
        "reason": "",
        "created_at": 100.0,
        "updated_at": 100.0,
        "vendor_command_id": "v-1",
    }
    await put(db, "c1", status="failed", at=130.0, reason="jammed")
    updated = await commands.get("c1")
    assert updated is not None
    assert (updated["status"], updated["reason"]) == ("failed", "jammed")
    assert (updated["created_at"], updated["updated_at"]) == (100.0, 130.0)
    assert updated["vendor_command_id"] == "v-1"  # None does not erase the vendor's id
    await put(db, "c1", status="confirmed", at=140.0, vendor="v-2")
    again = await commands.get("c1")
    assert again is not None and again["vendor_command_id"] == "v-2"
    assert await commands.get("nope") is None


async def test_a_command_without_a_reason_or_vendor_id_stores_empty_and_null(
    db: Database,
) -> None:
    await db.unit(
        lambda conn: sync_put_command(
            conn, command_id="c2", access_point_id="ap-1", user_id="u1", status="requested", at=1.0
        )
    )
    row = await Commands(db).get("c2")
    assert row is not None and row["reason"] == "" and row["vendor_command_id"] is None


async def test_steps_written_in_a_unit_or_a_transaction_read_back_in_order_with_their_data(
    db: Database,
) -> None:
    await put(db, "c1")

    def first(conn: UnitConnection) -> None:
        sync_add_steps(conn, "c1", [("requested", 1.0, {}), ("decided", 1.5, {"by": "rules"})])

    await db.unit(first)
    async with db.transaction() as conn:
        await add_steps(conn, "c1", [("accepted", 2.0, {"ticket": "t-9"})])
        await set_status(conn, "c1", "accepted", 2.0)
    assert await Commands(db).steps("c1") == [
        {"step": "requested", "at": 1.0},
        {"step": "decided", "at": 1.5, "by": "rules"},
        {"step": "accepted", "at": 2.0, "ticket": "t-9"},
    ]
    assert await Commands(db).steps("other") == []
    row = await Commands(db).get("c1")
    assert row is not None and (row["status"], row["updated_at"]) == ("accepted", 2.0)


async def test_a_steps_data_cannot_override_its_name_or_time(db: Database) -> None:
    await put(db, "c1")
    await db.unit(lambda conn: sync_add_steps(conn, "c1", [("exit", 3.0, {"step": "x", "at": 0})]))
    assert await Commands(db).steps("c1") == [{"step": "exit", "at": 3.0}]


async def test_setting_a_status_changes_only_that_command(db: Database) -> None:
    await put(db, "c1", status="accepted")
    await put(db, "c2", status="accepted")
    async with db.transaction() as conn:
        await set_status(conn, "c1", "confirmed", 5.0)
    one, two = await Commands(db).get("c1"), await Commands(db).get("c2")
    assert one is not None and two is not None
    assert (one["status"], one["updated_at"]) == ("confirmed", 5.0)
    assert (two["status"], two["updated_at"]) == ("accepted", 100.0)


async def candidate(
    db: Database,
    *,
    ap: str = "ap-1",
    command_id: str | None = None,
    vendor: str | None = None,
    since: float = 0.0,
) -> str | None:
    async with db.transaction() as conn:
        row = await passage_candidate(
            conn, access_point_id=ap, command_id=command_id, vendor_command_id=vendor, since=since
        )
    if row is not None:
        assert set(row) == {"id", "user_id", "status"}
    return None if row is None else str(row["id"])


async def test_a_passage_follows_our_command_then_the_vendors_then_the_latest_confirmed(
    db: Database,
) -> None:
    await put(db, "ours", status="failed", at=10.0)
    await put(db, "theirs", status="failed", at=20.0, vendor="v-7")
    await put(db, "older", status="confirmed", at=30.0)
    await put(db, "latest", status="confirmed", at=40.0)
    await put(db, "pending", status="accepted", at=50.0)
    await put(db, "elsewhere", status="confirmed", at=60.0, ap="ap-2", vendor="v-8")
    assert await candidate(db, command_id="ours", vendor="v-7") == "ours"
    assert await candidate(db, command_id="missing", vendor="v-7") == "theirs"
    assert await candidate(db, vendor="v-7") == "theirs"
    assert await candidate(db, command_id="missing", vendor="missing") == "latest"
    assert await candidate(db) == "latest"
    assert await candidate(db, since=40.0) == "latest"  # as old as allowed still counts
    assert await candidate(db, since=40.5) is None
    assert await candidate(db, command_id="elsewhere") == "latest"  # another door's command
    assert await candidate(db, vendor="v-8") == "latest"
    assert await candidate(db, ap="ap-3") is None


async def test_a_stored_answer_is_replaced_by_the_next_one_under_the_same_key(
    db: Database,
) -> None:
    now = time.time()
    await db.unit(
        lambda conn: sync_put_answer(conn, subject="u1", key="k", status=200, body={"a": 1}, at=now)
    )
    await db.unit(
        lambda conn: sync_put_answer(conn, subject="u1", key="k", status=403, body={"b": 2}, at=now)
    )
    assert await Commands(db).answer("u1", "k") == (403, {"b": 2})
    assert await Commands(db).answer("u1", "other") is None


async def test_an_answer_is_replayed_for_exactly_a_day(db: Database) -> None:
    await db.unit(
        lambda conn: sync_put_answer(conn, subject="u1", key="k", status=200, body={}, at=1000.0)
    )
    commands = Commands(db)
    assert IDEMPOTENCY_WINDOW == 86400
    assert await commands.answer("u1", "k", now=1000.0 + 86399.5) == (200, {})
    assert await commands.answer("u1", "k", now=1000.0 + 86400.0) is None


async def test_forgetting_expired_answers_keeps_the_young_ones(db: Database) -> None:
    now = time.time()

    def write(conn: UnitConnection) -> None:
        sync_put_answer(conn, subject="u1", key="old", status=200, body={}, at=now - 86401)
        sync_put_answer(conn, subject="u1", key="young", status=200, body={"y": 1}, at=now - 60)

    await db.unit(write)
    commands = Commands(db)
    assert await commands.forget_expired() == 1
    assert await commands.answer("u1", "young") == (200, {"y": 1})
    assert await commands.forget_expired() == 0


async def test_many_steps_written_in_one_statement_keep_their_order(db: Database) -> None:
    """``sync_add_steps`` inserts every step in one statement: ids in the order given, even
    when the times are not (``steps`` reads by id)."""
    await put(db, "c1")
    names = [f"s{n}" for n in range(12)]
    steps = [(name, 100.0 - n, {"n": n}) for n, name in enumerate(names)]
    statements: list[str] = []

    def unit(conn: UnitConnection) -> None:
        class Counting:
            dialect = conn.dialect

            def run(self, sql: str, **params: Any) -> list[Any]:
                statements.append(sql)
                return conn.run(sql, **params)

        sync_add_steps(Counting(), "c1", steps)
        sync_add_steps(Counting(), "c1", [])

    await db.unit(unit)
    assert len(statements) == 1
    assert [s["step"] for s in await Commands(db).steps("c1")] == names
    assert [s["n"] for s in await Commands(db).steps("c1")] == list(range(12))
