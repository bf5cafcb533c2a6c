from __future__ import annotations

from propdev.storage import Database, UnitConnection, events
from propdev.storage.commands import Commands, sync_put_answer, sync_put_command
from propdev.storage.events import EventStore


async def test_events_are_listed_per_user_oldest_first_after_a_cursor(db: Database) -> None:
    async with db.transaction() as conn:
        for n in range(3):
            await events.append(
                conn,
                user_id="u1",
                type="access.granted",
                access_point_id="ap-1",
                command_id=f"c{n}",
                occurred_at=float(n),
            )
        await events.append(
            conn,
            user_id="u2",
            type="access.granted",
            access_point_id="ap-1",
            command_id="other",
            occurred_at=9.0,
            data={"reason": "x"},
        )
    store = EventStore(db)
    mine = await store.page("u1")
    assert [e["command_id"] for e in mine] == ["c0", "c1", "c2"]
    later = await store.page("u1", after=mine[0]["id"], limit=1)
    assert [e["command_id"] for e in later] == ["c1"]
    theirs = await store.page("u2")
    assert theirs[0]["reason"] == "x"


async def test_a_stored_answer_is_found_by_subject_and_key_only(db: Database) -> None:
    def write(conn: UnitConnection) -> None:
        sync_put_command(
            conn,
            command_id="c1",
            access_point_id="ap-1",
            user_id="u1",
            status="confirmed",
            at=100.0,
        )
        sync_put_answer(conn, subject="u1", key="k1", status=200, body={"a": 1}, at=1e12)

    await db.unit(write)
    commands = Commands(db)
    assert await commands.answer("u1", "k1") == (200, {"a": 1})
    assert await commands.answer("u2", "k1") is None
    command = await commands.get("c1")
    assert command is not None and command["status"] == "confirmed"


async def test_an_answer_older_than_a_day_is_not_replayed(db: Database) -> None:
    await db.unit(
        lambda conn: sync_put_answer(conn, subject="u1", key="old", status=200, body={}, at=1.0)
    )
    commands = Commands(db)
    assert await commands.answer("u1", "old") is None
    assert await commands.forget_expired() == 1
