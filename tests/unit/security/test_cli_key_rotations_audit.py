"""The CLI's key rotations are audited (docs/audit.md, *Keys and commands on a node's host*):
``keys rotate`` (``data_key.rotate``), ``keys rotate-signing`` (``signing_key.rotate``) and
``audit rotate-checkpoint-key`` (``checkpoint_key.rotate``), actor ``cli``, found in the store;
an entry the store cannot take stops the command before anything changed."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from propdev.admin_cli import keys_command, signing_keys_command
from propdev.config.settings import Settings
from propdev.integrity.commands import rotate_command
from propdev.integrity.keys import current_key
from propdev.security import SigningKeys
from propdev.storage import Database, StoreUnavailableError
from propdev.storage.audit import AuditLog


def settings_for(tmp_path: Path) -> Settings:
    settings = Settings(data_dir=tmp_path / "node").resolved()
    settings.data_dir.mkdir(parents=True)
    return settings


async def cli_entries(settings: Settings) -> list[dict[str, Any]]:
    db = Database(settings.database_url)
    try:
        return await AuditLog(db).page(actor="cli")
    finally:
        await db.close()


async def test_a_data_key_rotation_is_audited_with_the_key_it_replaces(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    logs_captured: list[dict[str, Any]],  # the entries' log lines, off stdout
) -> None:
    settings = settings_for(tmp_path)
    assert await keys_command(settings, "status") == 0
    first = json.loads(capsys.readouterr().out)["primary"]
    assert await cli_entries(settings) == []  # a status changes nothing: no entry

    assert await keys_command(settings, "rotate") == 0
    rotated = json.loads(capsys.readouterr().out)["primary"]
    assert rotated != first
    found = await cli_entries(settings)
    assert [(e["action"], e["decision"], e["reason"], e["subject"]) for e in found] == [
        ("data_key.rotate", "granted", f"previous={first}", None)
    ]


def test_a_signing_key_rotation_is_audited_and_says_whether_old_keys_were_retired(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    logs_captured: list[dict[str, Any]],  # the entries' log lines, off stdout
) -> None:
    settings = settings_for(tmp_path)
    first = SigningKeys.load_or_create(settings.pki_dir / "jwt").signing_key.kid
    assert signing_keys_command(settings, "rotate-signing", False) == 0
    second = json.loads(capsys.readouterr().out)["signing"]
    assert signing_keys_command(settings, "rotate-signing", True) == 0
    assert signing_keys_command(settings, "signing", False) == 0  # a listing: no entry

    found = asyncio.run(cli_entries(settings))
    assert [(e["action"], e["reason"]) for e in found] == [
        ("signing_key.rotate", f"previous={first} retire_old=false"),
        ("signing_key.rotate", f"previous={second} retire_old=true"),
    ]


def test_a_checkpoint_key_rotation_is_audited_with_the_key_it_replaces(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    logs_captured: list[dict[str, Any]],  # the entries' log lines, off stdout
) -> None:
    settings = settings_for(tmp_path)
    assert rotate_command(settings) == 0  # the first key: there was none
    first = json.loads(capsys.readouterr().out)["key_id"]
    assert rotate_command(settings) == 0

    found = asyncio.run(cli_entries(settings))
    assert [(e["action"], e["decision"], e["reason"]) for e in found] == [
        ("checkpoint_key.rotate", "granted", "previous="),
        ("checkpoint_key.rotate", "granted", f"previous={first}"),
    ]


def test_no_rotation_without_its_entry_when_the_store_is_down(
    tmp_path: Path, logs_captured: list[dict[str, Any]]
) -> None:
    settings = settings_for(tmp_path)
    first = SigningKeys.load_or_create(settings.pki_dir / "jwt").signing_key.kid
    assert rotate_command(settings) == 0
    checkpoint = current_key(settings.data_dir)
    down = Settings(
        data_dir=settings.data_dir, database_url="postgresql://postgres@127.0.0.1:1/none"
    ).resolved()

    with pytest.raises(StoreUnavailableError):
        signing_keys_command(down, "rotate-signing", False)
    with pytest.raises(StoreUnavailableError):
        rotate_command(down)

    assert SigningKeys.load_or_create(settings.pki_dir / "jwt").signing_key.kid == first
    assert current_key(settings.data_dir) == checkpoint
