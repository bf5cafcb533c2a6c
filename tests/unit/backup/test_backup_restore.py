"""``propdev.backup`` on SQLite and PostgreSQL: a round trip restores the same rows and files,
the master key is never in a backup, and every bad input is refused with nothing written."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import io
import json
import os
import sqlite3
import struct
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from propdev.backup import (
    BackupError,
    DamagedBackupError,
    NoMasterKeyError,
    TargetNotEmptyError,
    UnsupportedBackupError,
    WrongKeyError,
    archive,
    create,
    describe,
    restore,
    verify,
)
from propdev.config import Settings
from propdev.devkit import seed_demo
from propdev.storage import Database
from propdev.storage.identity import cluster_id
from tests.support.postgres import fresh_database

pytestmark = pytest.mark.usefixtures("cheap_passwords")


def settings_for(data_dir: Path, url: str | None, **extra: str) -> Settings:
    env = {"PROPDEV_DATA_DIR": str(data_dir), "PROPDEV_LOG_LEVEL": "warning", **extra}
    if url is not None:
        env["PROPDEV_DATABASE_URL"] = url
    return Settings.from_env(env)


@contextlib.contextmanager
def store_urls(backend: str, tmp_path: Path) -> Iterator[tuple[str | None, str | None]]:
    """(source, target) stores: SQLite in each data dir (None: the default), or two fresh
    PostgreSQL databases."""
    if backend == "sqlite":
        yield None, None
        return
    with fresh_database() as source, fresh_database() as target:
        yield source, target


def dump(settings: Settings) -> dict[str, list[tuple[Any, ...]]]:
    """Every table's rows, sorted: what a restore must reproduce."""
    url = settings.database_url
    if url.startswith("sqlite"):
        path = url.removeprefix("sqlite:///")
        with contextlib.closing(sqlite3.connect(path)) as conn:
            names = [
                r[0]
                for r in conn.execute(
                    "SELECT name FROM sqlite_master WHERE type = 'table' "
                    "AND name NOT LIKE 'sqlite_%'"
                )
            ]
            return {n: sorted(map(tuple, conn.execute(f'SELECT * FROM "{n}"'))) for n in names}
    with psycopg.connect(url) as conn:
        names = [
            r[0]
            for r in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"
            )
        ]
        return {n: sorted(map(tuple, conn.execute(f'SELECT * FROM "{n}"'))) for n in names}


def files_of(directory: Path) -> dict[str, bytes]:
    if not directory.exists():
        return {}
    return {
        p.relative_to(directory).as_posix(): p.read_bytes()
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }


def master_key_text(settings: Settings) -> str:
    return (settings.data_dir / "keys" / "master.key").read_text().strip()


async def seeded(settings: Settings) -> str:
    """Seed the demo estate; return the store's cluster id."""
    await seed_demo(settings)
    db = Database(settings.database_url)
    try:
        return await cluster_id(db)
    finally:
        await db.close()


def plaintext_of(path: Path, master: bytes) -> bytes:
    with path.open("rb") as src:
        reader = archive.DecryptingReader(src, archive.read_header(src), master)
        return reader.read()


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


async def test_a_restore_brings_back_every_row_and_key_file_and_never_the_master_key(
    tmp_path: Path, backend: str
) -> None:
    with store_urls(backend, tmp_path) as (source_url, target_url):
        source = settings_for(tmp_path / "old", source_url)
        cluster = await seeded(source)
        backup = tmp_path / "estate.backup"

        made = await asyncio.to_thread(create, source, backup)

        key = master_key_text(source)
        target = settings_for(tmp_path / "new", target_url, PROPDEV_MASTER_KEY=key)
        header = describe(backup)
        assert (header["engine"], header["cluster_id"], made["cluster_id"]) == (
            backend,
            cluster,
            cluster,
        )
        restored = await asyncio.to_thread(restore, target, backup)

        assert restored["cluster_id"] == cluster
        before = dump(source)
        # The one row written after the snapshot: the record of this backup itself.
        assert [(r[2], r[3]) for r in before.pop("backup_runs")] == [(made["bytes"], cluster)]
        after = dump(target)
        assert after.pop("backup_runs") == []
        assert after == before
        old_files = files_of(source.data_dir)
        del old_files["keys/master.key"]
        new_files = files_of(target.data_dir)
        if backend == "sqlite":
            for name in ("propdev.db", "propdev.db-wal", "propdev.db-shm"):
                old_files.pop(name, None)
                new_files.pop(name, None)
        assert new_files == old_files
        assert "pki/ca-key.pem" in new_files and "keys/master.key" not in new_files

        raw = base64.b64decode(key)
        clear = plaintext_of(backup, raw)
        with tarfile.open(fileobj=io.BytesIO(clear), mode="r:gz") as tar:
            names = tar.getnames()
            content = b"".join(
                tar.extractfile(m).read()  # type: ignore[union-attr]
                for m in tar.getmembers()
            )
        assert "data/keys/master.key" not in names and "data/pki/ca-key.pem" in names
        assert names[-1] == "MANIFEST.json"
        for secret in (raw, key.encode(), raw.hex().encode()):
            assert secret not in clear and secret not in content
            assert secret not in backup.read_bytes()


async def test_a_backup_checks_as_sound_without_writing_anything(tmp_path: Path) -> None:
    source = settings_for(tmp_path / "old", None)
    await seeded(source)
    backup = tmp_path / "estate.backup"
    await asyncio.to_thread(create, source, backup)
    before = files_of(tmp_path)

    report = verify(source, backup)

    assert report["ok"] is True and report["rows"] > 0
    assert files_of(tmp_path) == before


@contextlib.contextmanager
def one_backup(tmp_path: Path, backend: str) -> Iterator[tuple[Settings, Path, Settings]]:
    """A seeded source, its backup, and settings for an empty target with the same key."""
    with store_urls(backend, tmp_path) as (source_url, target_url):
        source = settings_for(tmp_path / "old", source_url)
        asyncio.run(seeded(source))
        backup = tmp_path / "estate.backup"
        create(source, backup)
        target = settings_for(
            tmp_path / "new", target_url, PROPDEV_MASTER_KEY=master_key_text(source)
        )
        yield source, backup, target


def assert_nothing_written(target: Settings, before: dict[str, bytes]) -> None:
    assert files_of(target.data_dir) == before
    if target.database_url.startswith("postgresql"):
        with psycopg.connect(target.database_url) as conn:
            tables = conn.execute(
                "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
                " WHERE n.nspname = current_schema()"
            ).fetchone()
        assert tables == (0,)


def records(path: Path) -> list[tuple[int, int]]:
    """(offset, length) of each encrypted record of a backup file."""
    data = path.read_bytes()
    (size,) = struct.unpack(">I", data[len(archive.MAGIC) : len(archive.MAGIC) + 4])
    offset = len(archive.MAGIC) + 4 + size + 32
    found = []
    while offset < len(data):
        (length,) = struct.unpack(">I", data[offset : offset + 4])
        found.append((offset, 4 + length))
        offset += 4 + length
    return found


def test_a_wrong_master_key_is_refused_and_nothing_is_written(tmp_path: Path, backend: str) -> None:
    with one_backup(tmp_path, backend) as (_, backup, target):
        other = base64.b64encode(os.urandom(32)).decode()
        wrong = settings_for(target.data_dir, target.database_url, PROPDEV_MASTER_KEY=other)
        with pytest.raises(WrongKeyError, match="another master key"):
            restore(wrong, backup)
        assert_nothing_written(wrong, {})
        assert not target.data_dir.exists()


def test_without_a_master_key_nothing_is_restored_and_none_is_invented(tmp_path: Path) -> None:
    with one_backup(tmp_path, "sqlite") as (_, backup, target):
        keyless = settings_for(target.data_dir, None)
        with pytest.raises(NoMasterKeyError, match="PROPDEV_MASTER_KEY"):
            restore(keyless, backup)
        assert not target.data_dir.exists()


@pytest.mark.parametrize("where", ["ciphertext", "header", "tag"])
def test_a_flipped_byte_is_refused_as_damage_and_nothing_is_written(
    tmp_path: Path, backend: str, where: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(archive, "CHUNK", 4096)  # several records
    with one_backup(tmp_path, backend) as (_, backup, target):
        data = bytearray(backup.read_bytes())
        spans = records(backup)
        assert len(spans) > 2, spans
        offset = {
            "header": len(archive.MAGIC) + 10,
            "ciphertext": spans[1][0] + 100,
            "tag": spans[-1][0] + spans[-1][1] - 1,
        }[where]
        data[offset] ^= 0x01
        backup.write_bytes(bytes(data))

        with pytest.raises(DamagedBackupError, match="damaged"):
            restore(target, backup)
        assert_nothing_written(target, {})
        with pytest.raises(DamagedBackupError):
            verify(target, backup)


@pytest.mark.parametrize("cut", ["at_a_record", "inside_a_record", "inside_the_header"])
def test_a_truncated_file_is_refused_and_nothing_is_written(
    tmp_path: Path, backend: str, cut: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(archive, "CHUNK", 4096)
    with one_backup(tmp_path, backend) as (_, backup, target):
        spans = records(backup)
        length = {
            "at_a_record": spans[-1][0],  # the last record missing altogether
            "inside_a_record": spans[len(spans) // 2][0] + 50,
            "inside_the_header": len(archive.MAGIC) + 20,
        }[cut]
        backup.write_bytes(backup.read_bytes()[:length])

        with pytest.raises(DamagedBackupError, match="truncated"):
            restore(target, backup)
        assert_nothing_written(target, {})


def test_an_unknown_format_version_is_refused(tmp_path: Path) -> None:
    with one_backup(tmp_path, "sqlite") as (_, backup, target):
        data = backup.read_bytes()
        start = len(archive.MAGIC)
        (size,) = struct.unpack(">I", data[start : start + 4])
        header = json.loads(data[start + 4 : start + 4 + size])
        header["format"] = 2
        raw = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
        rest = data[start + 4 + size + 32 :]
        digest = hashlib.sha256(raw).digest()
        backup.write_bytes(data[:start] + struct.pack(">I", len(raw)) + raw + digest + rest)

        with pytest.raises(UnsupportedBackupError, match="format 2"):
            restore(target, backup)
        assert_nothing_written(target, {})


def test_a_store_that_is_not_empty_is_refused_naming_its_own_cluster(
    tmp_path: Path, backend: str
) -> None:
    with one_backup(tmp_path, backend) as (_, backup, target):
        other = asyncio.run(seeded(target))  # another cluster lives there now
        before_rows, before_files = dump(target), files_of(target.data_dir)
        with pytest.raises(TargetNotEmptyError, match="not empty"):
            restore(target, backup)
        assert dump(target) == before_rows and files_of(target.data_dir) == before_files
        if backend == "postgresql":  # SQLite names the file; PostgreSQL the identity in it
            with pytest.raises(TargetNotEmptyError, match=other):
                restore(target, backup)


def test_a_data_dir_that_is_not_empty_is_refused(tmp_path: Path, backend: str) -> None:
    with one_backup(tmp_path, backend) as (_, backup, target):
        (target.data_dir / "pki").mkdir(parents=True)
        (target.data_dir / "pki" / "ca.pem").write_text("someone else's CA")
        before = files_of(target.data_dir)
        with pytest.raises(TargetNotEmptyError, match="data dir"):
            restore(target, backup)
        assert_nothing_written(target, before)


def test_the_master_key_file_alone_leaves_the_data_dir_empty_enough(tmp_path: Path) -> None:
    with one_backup(tmp_path, "sqlite") as (source, backup, _):
        target = settings_for(tmp_path / "new", None)
        (target.data_dir / "keys").mkdir(parents=True)
        key = (source.data_dir / "keys" / "master.key").read_bytes()
        (target.data_dir / "keys" / "master.key").write_bytes(key)

        restore(target, backup)

        before, after = dump(source), dump(target)
        assert len(before.pop("backup_runs")) == 1 and after.pop("backup_runs") == []
        assert after == before


def test_a_backup_of_another_cluster_restores_into_an_empty_target_as_that_cluster(
    tmp_path: Path, backend: str
) -> None:
    """Disaster recovery: the target has no identity yet, so it becomes the backup's cluster.
    What must never happen -- a store with another identity overwritten -- is the non-empty
    refusal above."""
    with one_backup(tmp_path, backend) as (_, backup, target):
        restored = restore(target, backup)

        async def identity() -> str:
            db = Database(target.database_url)
            try:
                return await cluster_id(db)
            finally:
                await db.close()

        assert asyncio.run(identity()) == restored["cluster_id"] == describe(backup)["cluster_id"]
        assert restored["cluster_id"] != ""


def test_a_backup_never_overwrites_a_file(tmp_path: Path) -> None:
    with one_backup(tmp_path, "sqlite") as (source, backup, _):
        before = backup.read_bytes()
        with pytest.raises(BackupError, match="exists"):
            create(source, backup)
        assert backup.read_bytes() == before
