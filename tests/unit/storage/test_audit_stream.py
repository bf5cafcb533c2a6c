"""The audit stream: each committed audit entry logged once as ``audit_entry``, after its
commit, without its personal fields; an entry rolled back is never logged."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from structlog.testing import capture_logs

from propdev.storage import Database, UnitConnection
from propdev.storage.audit import STREAM_FIELDS, AuditLog, AuditRecord, append, sync_append

PERSONAL = {"username": "jane.doe@example.net", "address": "198.51.100.7"}


def _record(n: int, **extra: Any) -> AuditRecord:
    return AuditRecord(
        at=float(n),
        actor=f"user:{n}",
        action="auth.login",
        access_point_id=None,
        decision="denied",
        reason="bad_password",
        subject=str(n),
        **extra,
    )


def _stream(logs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [entry for entry in logs if entry["event"] == "audit_entry"]


async def test_a_unit_s_entry_is_logged_after_its_commit_without_personal_fields(
    db: Database,
) -> None:
    seen_inside: list[list[dict[str, Any]]] = []

    with capture_logs() as logs:

        def unit(conn: UnitConnection) -> dict[str, Any]:
            entry = sync_append(conn, _record(1, personal=PERSONAL))
            seen_inside.append(_stream(logs))  # not yet: the unit has not committed
            return entry

        entry = await db.unit(unit)

    assert seen_inside == [[]]
    [event] = _stream(logs)
    assert {k: v for k, v in event.items() if k not in ("event", "log_level")} == {
        name: entry[name] for name in STREAM_FIELDS
    }
    assert event["id"] == entry["id"]
    assert event["hash"] == entry["hash"]
    assert event["subject"] == "1"
    assert "personal" not in event
    assert "personal_digest" not in event
    assert not set(PERSONAL.values()) & {str(v) for v in event.values()}


async def test_a_rolled_back_unit_logs_none_of_its_entries(db: Database) -> None:
    def changes_its_mind(conn: UnitConnection) -> None:
        sync_append(conn, _record(1))
        raise LookupError("rolled back after its audit entry")

    with capture_logs() as logs:
        with pytest.raises(LookupError):
            await db.unit(changes_its_mind)
        kept = await db.unit(lambda conn: sync_append(conn, _record(2)))

    assert [e["id"] for e in _stream(logs)] == [kept["id"]]
    assert [e["actor"] for e in _stream(logs)] == ["user:2"]


async def test_concurrent_units_log_exactly_the_entries_that_committed(db: Database) -> None:
    def unit(n: int) -> Callable[[UnitConnection], dict[str, Any]]:
        def run(conn: UnitConnection) -> dict[str, Any]:
            entry = sync_append(conn, _record(n))
            if n % 3 == 0:
                raise LookupError("rolled back")
            return entry

        return run

    with capture_logs() as logs:
        results = await asyncio.gather(
            *(db.unit(unit(n)) for n in range(12)), return_exceptions=True
        )

    committed = sorted(r["id"] for r in results if isinstance(r, dict))
    assert len(committed) == 8
    assert sorted(e["id"] for e in _stream(logs)) == committed
    stored = await db.fetch_all("SELECT id FROM audit ORDER BY id")
    assert [row["id"] for row in stored] == committed


async def test_an_interactive_transaction_s_entry_is_logged_once_it_commits(
    db: Database,
) -> None:
    with capture_logs() as logs:
        async with db.transaction() as conn:
            entry = await append(conn, db.dialect, _record(1, personal=PERSONAL))
            assert _stream(logs) == []
        with pytest.raises(LookupError):
            async with db.transaction() as conn:
                await append(conn, db.dialect, _record(2))
                raise LookupError("rolled back")
        via_log = await AuditLog(db).append(_record(3))

    assert [e["id"] for e in _stream(logs)] == [entry["id"], via_log["id"]]
    assert all("personal" not in e for e in _stream(logs))
