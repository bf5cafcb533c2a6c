"""Retention applied as of a moment, by hand and daily, on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt

import pytest

from propdev.privacy import (
    DailyRetention,
    RetentionError,
    RetentionPolicy,
    apply_retention,
    last_run,
    parse_as_of,
)
from propdev.storage import Database
from propdev.storage.audit import AuditLog
from tests.unit.privacy.conftest import (
    DAY,
    NOW,
    add_audit,
    add_command,
    add_event,
    add_resident,
    add_session,
    count,
)

POLICY = RetentionPolicy(events_days=30, audit_days=90)


async def test_a_run_deletes_old_events_and_commands_and_blanks_old_audit_personal_fields(
    db: Database,
) -> None:
    user_id = await add_resident(db)
    for age in (31, 29):
        await add_command(db, user_id, f"cmd-{age}", NOW - age * DAY)
        await add_event(db, user_id, NOW - age * DAY, command_id=f"cmd-{age}")
        await add_session(db, user_id, f"fam-{age}", NOW - age * DAY)
    for age in (91, 89):
        await add_audit(
            db, at=NOW - age * DAY, actor="anonymous", subject=user_id, personal={"age": str(age)}
        )

    report = await apply_retention(
        db, POLICY, as_of=NOW, now=NOW, actor="cli:retention", trigger="cli"
    )

    assert report is not None
    assert report.counts == {
        "events_deleted": 1,
        "command_steps_deleted": 1,
        "commands_deleted": 1,
        "sessions_deleted": 1,
        "authorization_codes_deleted": 0,
        "audit_personal_blanked": 1,
    }
    assert [r["command_id"] for r in await db.fetch_all("SELECT command_id FROM events")] == [
        "cmd-29"
    ]
    assert [r["id"] for r in await db.fetch_all("SELECT id FROM commands")] == ["cmd-29"]
    kept = await db.fetch_all("SELECT personal FROM audit WHERE action = 'auth.login' ORDER BY id")
    assert [r["personal"] is None for r in kept] == [True, False]
    assert await AuditLog(db).verify() == (True, 3, None)
    entry = await db.fetch_one("SELECT actor, reason FROM audit WHERE action = 'retention.run'")
    assert entry is not None and entry["actor"] == "cli:retention"
    assert "events_deleted=1" in entry["reason"] and "audit_personal_blanked=1" in entry["reason"]
    recorded = await last_run(db)
    assert recorded is not None
    assert (recorded["as_of"], recorded["ran_at"]) == (NOW, NOW)
    assert recorded["counts"] == report.counts


async def test_a_run_as_of_before_the_last_one_is_refused_and_changes_nothing(
    db: Database,
) -> None:
    user_id = await add_resident(db)
    await apply_retention(db, POLICY, as_of=NOW, now=NOW, actor="cli", trigger="cli")
    await add_event(db, user_id, NOW - 40 * DAY)

    with pytest.raises(RetentionError, match="earlier than the last run"):
        await apply_retention(db, POLICY, as_of=NOW - 1, now=NOW, actor="cli", trigger="cli")

    assert await count(db, "events") == 1
    assert await count(db, "retention_runs") == 1
    assert await count(db, "audit WHERE action = 'retention.run'") == 1


async def test_a_run_as_of_the_future_is_refused(db: Database) -> None:
    with pytest.raises(RetentionError, match="in the future"):
        await apply_retention(db, POLICY, as_of=NOW + DAY, now=NOW, actor="cli", trigger="cli")
    assert await count(db, "retention_runs") == 0


async def test_the_daily_run_runs_once_a_day_as_of_the_nodes_clock(db: Database) -> None:
    user_id = await add_resident(db)
    clock = [NOW]
    daily = DailyRetention(db, POLICY, node_id="n1", clock=lambda: clock[0])
    other_node = DailyRetention(db, POLICY, node_id="n2", clock=lambda: clock[0])
    await add_event(db, user_id, NOW - 29 * DAY)

    first = await daily.tick()
    again = await other_node.tick()
    clock[0] = NOW + DAY - 1
    too_soon = await daily.tick()
    clock[0] = NOW + DAY + 1
    next_day = await other_node.tick()

    assert first is not None and first.counts["events_deleted"] == 0
    assert (again, too_soon) == (None, None)
    assert next_day is not None and next_day.counts["events_deleted"] == 1
    actors = await db.fetch_all("SELECT actor FROM audit WHERE action = 'retention.run'")
    assert [r["actor"] for r in actors] == ["node:n1", "node:n2"]
    assert await count(db, "retention_runs WHERE trigger = 'daily'") == 2


def test_as_of_is_read_as_iso_8601_and_utc_when_no_zone_is_given() -> None:
    assert parse_as_of("2027-01-15") == dt.datetime(2027, 1, 15, tzinfo=dt.UTC).timestamp()
    assert parse_as_of("2027-01-15T03:00:00+03:00") == parse_as_of("2027-01-15T00:00:00Z")
    for bad in ("yesterday", "2027-13-01", ""):
        with pytest.raises(RetentionError, match="not an ISO-8601"):
            parse_as_of(bad)
