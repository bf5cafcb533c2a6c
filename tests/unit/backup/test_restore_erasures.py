"""A restore brings back the people erased after the backup; their erasures, exported from the
store that lived on (or read from the audit stream), are re-applied: on SQLite and PostgreSQL.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from propdev.backup.command import backup_command
from propdev.config import Settings
from propdev.integrity.commands import verify_command
from propdev.privacy import PersonalData, erasures_export_command, reapply_command
from propdev.security import create_user, open_vault
from propdev.storage import Database
from propdev.storage.audit import STREAM_FIELDS
from tests.unit.backup.test_backup_restore import (
    assert_nothing_written,
    dump,
    master_key_text,
    seeded,
    settings_for,
    store_urls,
)
from tests.unit.privacy.conftest import Cuts

pytestmark = pytest.mark.usefixtures("cheap_passwords", "logs_captured")

OPERATOR = "operator:op-erasures"


async def _query(settings: Settings, sql: str, **params: object) -> list[dict[str, Any]]:
    db = Database(settings.database_url)
    try:
        return [dict(r) for r in await db.fetch_all(sql, **params)]
    finally:
        await db.close()


def query(settings: Settings, sql: str, **params: object) -> list[dict[str, Any]]:
    return asyncio.run(_query(settings, sql, **params))


def user_id_of(settings: Settings, username: str) -> str:
    return str(query(settings, "SELECT id FROM users WHERE username = :n", n=username)[0]["id"])


async def _erase(settings: Settings, user_id: str) -> None:
    db = Database(settings.database_url)
    try:
        await PersonalData(db, Cuts()).erase(OPERATOR, user_id)
    finally:
        await db.close()


def erase(settings: Settings, user_id: str) -> None:
    asyncio.run(_erase(settings, user_id))


def exported(settings: Settings, capsys: pytest.CaptureFixture[str], path: Path) -> Path:
    """``privacy erasures export > path`` on ``settings``' store."""
    assert asyncio.run(erasures_export_command(settings)) == 0
    path.write_text(capsys.readouterr().out)
    return path


def reapplied(settings: Settings, capsys: pytest.CaptureFixture[str], path: Path) -> Any:
    assert asyncio.run(reapply_command(settings, str(path))) == 0
    return json.loads(capsys.readouterr().out)


def audit_verifies(settings: Settings, capsys: pytest.CaptureFixture[str]) -> bool:
    code = asyncio.run(verify_command(settings, None))
    capsys.readouterr()
    return code == 0


def audit_stream_lines(settings: Settings) -> str:
    """The store's audit entries as the nodes log them on the audit stream (JSON lines), with
    another log line among them and one entry as Loki's ``logcli --output=jsonl`` wraps it."""
    rows = query(settings, "SELECT * FROM audit ORDER BY id")
    lines = [
        json.dumps({"event": "audit_entry", **{f: row[f] for f in STREAM_FIELDS}}) for row in rows
    ]
    lines.insert(1, json.dumps({"event": "node_started", "node": "n1"}))
    lines[-1] = json.dumps({"labels": {"stream": "audit"}, "line": lines[-1]})
    return "\n".join(lines) + "\n"


def held(settings: Settings, user_id: str) -> dict[str, Any]:
    row = query(settings, "SELECT username, full_name, roles FROM users WHERE id = :u", u=user_id)
    rights = query(settings, "SELECT access_point_id FROM rights WHERE user_id = :u", u=user_id)
    return {**row[0], "rights": len(rights)}


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def backed_up(tmp_path: Path, backend: str) -> Iterator[tuple[Settings, Path, Settings]]:
    """A seeded store, its backup, then Anna erased there; settings for an empty target."""
    with store_urls(backend, tmp_path) as (source_url, target_url):
        source = settings_for(tmp_path / "old", source_url)
        asyncio.run(seeded(source))
        backup = tmp_path / "estate.backup"
        assert backup_command(source, "create", str(backup)) == 0
        erase(source, user_id_of(source, "anna"))
        target = settings_for(
            tmp_path / "new", target_url, PROPDEV_MASTER_KEY=master_key_text(source)
        )
        yield source, backup, target


def test_a_restored_resident_erased_after_the_backup_is_erased_again_once(
    backed_up: tuple[Settings, Path, Settings],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    source, backup, target = backed_up
    anna = str(query(source, "SELECT user_id FROM erasures")[0]["user_id"])
    original = query(source, "SELECT erased_at, actor FROM erasures")[0]
    capsys.readouterr()
    listing = exported(source, capsys, tmp_path / "erasures.json")

    assert backup_command(target, "restore", str(backup)) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["erasures"] == "not re-applied"
    assert "anyone erased after then is back" in err and "privacy erasures reapply" in err
    back = held(target, anna)
    assert (back["username"], back["roles"]) == ("anna", "resident")
    assert back["full_name"] != "" and back["rights"] > 0
    key_of_anna = "SELECT kid FROM person_keys WHERE user_id = :u"
    assert query(target, key_of_anna, u=anna) != []  # the backup held her key too
    assert query(source, key_of_anna, u=anna) == []  # the erasure destroyed it there

    report = reapplied(target, capsys, listing)

    assert report == {
        "source": "erasure_list",
        "listed": 1,
        "applied": [anna],
        "skipped_already_erased": [],
        "absent_recorded": [],
    }
    assert (
        held(target, anna)
        == held(source, anna)
        == {
            "username": f"~erased:{anna}",
            "full_name": "",
            "roles": "",
            "rights": 0,
        }
    )
    assert query(target, "SELECT erased_at, actor FROM erasures") == [original]
    assert query(target, key_of_anna, u=anna) == []  # and the re-applied one here
    entries = query(
        target, "SELECT actor, reason FROM audit WHERE action = 'resident.erase' ORDER BY id"
    )
    assert [e["actor"] for e in entries] == ["cli:erasures"]
    assert entries[0]["reason"].startswith(
        f"user_id={anna} reapplied erased_at={original['erased_at']!r} erased_by={OPERATOR} "
    )
    assert audit_verifies(target, capsys)

    before = dump(target)
    again = reapplied(target, capsys, listing)

    assert (again["applied"], again["skipped_already_erased"]) == ([], [anna])
    assert dump(target) == before
    assert audit_verifies(target, capsys)


def test_a_restore_with_the_audit_stream_re_applies_its_erasures_before_it_returns(
    backed_up: tuple[Settings, Path, Settings],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    source, backup, target = backed_up
    anna = str(query(source, "SELECT user_id FROM erasures")[0]["user_id"])
    stream = tmp_path / "audit-stream.jsonl"
    stream.write_text(audit_stream_lines(source))
    capsys.readouterr()

    assert backup_command(target, "restore", str(backup), str(stream)) == 0

    out, err = capsys.readouterr()
    assert json.loads(out)["erasures"]["applied"] == [anna]
    assert json.loads(out)["erasures"]["source"] == "audit_stream"
    assert "is back" not in err
    assert held(target, anna)["username"] == f"~erased:{anna}"
    assert audit_verifies(target, capsys)


def test_a_malformed_erasure_list_changes_nothing(
    backed_up: tuple[Settings, Path, Settings],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _, backup, target = backed_up
    cases = {
        "no-id.json": (
            '{"kind": "propdev.erasures", "format": 1, "erasures": [{"user_id": ""}]}',
            "no valid user id",
        ),
        "other-cluster.json": (
            '{"kind": "propdev.erasures", "format": 1, "cluster_id": "elsewhere", "erasures": []}',
            "of cluster elsewhere, the backup of cluster",
        ),
    }
    for name, (text, words) in cases.items():
        (tmp_path / name).write_text(text)

        assert backup_command(target, "restore", str(backup), str(tmp_path / name)) == 1

        assert words in capsys.readouterr().err, name
        assert_nothing_written(target, {})

    assert backup_command(target, "restore", str(backup)) == 0  # nothing was left in the way
    assert held(target, user_id_of(target, "anna"))["roles"] == "resident"


def test_a_malformed_file_given_to_reapply_changes_nothing(
    backed_up: tuple[Settings, Path, Settings],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    source, backup, target = backed_up
    assert backup_command(target, "restore", str(backup)) == 0
    anna = str(query(source, "SELECT user_id FROM erasures")[0]["user_id"])
    good_line = audit_stream_lines(source).splitlines()[-2]
    staff = user_id_of(target, "operator")
    cases = {
        "empty.json": ("", "empty"),
        "not-json.jsonl": (good_line + "\n{not json\n", "line 2: not JSON"),
        "no-audit.jsonl": ('{"event": "node_started"}\n', "no line is an audit_entry"),
        "future.json": ('{"kind": "propdev.erasures", "format": 9, "erasures": []}', "format 9"),
        "no-time.json": (
            json.dumps({"kind": "propdev.erasures", "format": 1, "erasures": [{"user_id": anna}]}),
            "no valid time",
        ),
        "other-cluster.json": (
            json.dumps(
                {"kind": "propdev.erasures", "format": 1, "cluster_id": "elsewhere", "erasures": []}
            ),
            "cluster elsewhere",
        ),
        "staff.json": (
            json.dumps(
                {
                    "kind": "propdev.erasures",
                    "format": 1,
                    "erasures": [
                        {"user_id": anna, "erased_at": 1.0, "actor": OPERATOR},
                        {"user_id": staff, "erased_at": 2.0, "actor": OPERATOR},
                    ],
                }
            ),
            "not a resident's",
        ),
    }
    capsys.readouterr()
    before = dump(target)
    for name, (text, words) in cases.items():
        (tmp_path / name).write_text(text)

        assert asyncio.run(reapply_command(target, str(tmp_path / name))) == 2, name

        out, err = capsys.readouterr()
        assert out == "" and words in err, (name, err)
        assert dump(target) == before, name
    assert held(target, anna)["username"] == "anna"


def test_an_erasure_of_someone_the_backup_never_held_is_recorded_and_exported_again(
    backed_up: tuple[Settings, Path, Settings],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    source, backup, target = backed_up
    newcomer = asyncio.run(_newcomer(source))
    erase(source, newcomer)
    listing = exported(source, capsys, tmp_path / "erasures.json")
    assert backup_command(target, "restore", str(backup), str(listing)) == 0

    report = json.loads(capsys.readouterr().out)["erasures"]

    assert report["absent_recorded"] == [newcomer] and len(report["applied"]) == 1
    assert query(target, "SELECT id FROM users WHERE id = :u", u=newcomer) == []
    assert (
        json.loads(exported(target, capsys, tmp_path / "again.json").read_text())["erasures"]
        == json.loads(listing.read_text())["erasures"]
    )
    assert audit_verifies(target, capsys)


async def _newcomer(settings: Settings) -> str:
    db = Database(settings.database_url)
    try:
        await open_vault(settings, db)
        return await create_user(
            db, username="nina", password="pw-nina-123", roles=["resident"], full_name="Nina"
        )
    finally:
        await db.close()
