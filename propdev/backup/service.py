"""``backup create``, ``backup verify`` and ``backup restore``.

A backup is one file (``propdev.backup.archive``): a public header, then a gzip'd tar,
encrypted, holding ``store/…`` (the store's snapshot, ``propdev.backup.store``), ``data/…``
(the data dir's files but the master key, ``propdev.backup.datadir``) and, last,
``MANIFEST.json``: the header's facts again and each part's size and SHA-256.

A restore authenticates the whole file and checks every part against the manifest inside a
staging directory before it writes anything to the data dir or the store; it refuses a wrong
master key, a damaged or truncated file, an unknown format or schema version, another engine,
and a data dir or store that is not empty. A backup of *another* cluster restored into an
empty target is disaster recovery and allowed: the restored store keeps the cluster id the
backup names. A store that already has an identity is not empty, so it is never overwritten.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hashlib
import io
import json
import os
import secrets
import tarfile
import tempfile
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import propdev.backup.archive as archive
import propdev.backup.datadir as datadir
import propdev.backup.store as store
from propdev.backup.errors import (
    BackupError,
    DamagedBackupError,
    NoMasterKeyError,
    TargetNotEmptyError,
)
from propdev.config import Settings
from propdev.security.crypto import MasterKeyError, parse_master_key
from propdev.security.custody import check_custody
from propdev.storage import CURRENT_VERSION, Database, migrate
from propdev.storage.backup_runs import record_run
from propdev.storage.identity import cluster_id

MANIFEST = "MANIFEST.json"


def configured_master_key(settings: Settings) -> bytes:
    """The master key the settings name -- never a new one: a backup is made and restored
    under the key that wraps the store's data keys."""
    check_custody(settings)
    try:
        if settings.master_key:
            return parse_master_key(settings.master_key, source="PROPDEV_MASTER_KEY")
        path = settings.master_key_file or settings.data_dir / datadir.MASTER_KEY_DEFAULT
        if not path.exists():
            raise NoMasterKeyError(
                f"no master key at {path}: set PROPDEV_MASTER_KEY or PROPDEV_MASTER_KEY_FILE "
                "to the key the store's data keys are wrapped under"
            )
        return parse_master_key(path.read_bytes(), source=str(path))
    except MasterKeyError as exc:
        raise NoMasterKeyError(str(exc)) from None


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def _add(tar: tarfile.TarFile, name: str, data: IO[bytes], size: int, mtime: float) -> None:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mode = 0o600
    info.mtime = int(mtime)  # kept: a signing key's time says when its successor may retire it
    tar.addfile(info, data)


# -- create ------------------------------------------------------------------------------------


async def _record_run(url: str, at: float, size: int, cluster: str) -> None:
    db = Database(url)
    try:
        await record_run(db, at=at, size=size, cluster_id=cluster)
    finally:
        await db.close()


async def _ensure_identity(url: str) -> str:
    db = Database(url)
    try:
        await migrate(db)  # as every command does: the identity table is there, and filled
        return await cluster_id(db)
    finally:
        await db.close()


def create(settings: Settings, path: Path) -> dict[str, Any]:
    """Write a backup of the store and the data dir to ``path`` (which must not exist).
    Synchronous (blocking file and database work): from async code, in a worker thread."""
    master = configured_master_key(settings)
    if path.exists():
        raise BackupError(f"{path} exists: a backup never overwrites a file")
    engine = store.engine_of(settings.database_url)
    identity = asyncio.run(_ensure_identity(settings.database_url))
    path = path.absolute()
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    with tempfile.TemporaryDirectory(prefix=".propdev-backup-", dir=path.parent) as work:
        staging = Path(work)
        snap = store.snapshot(settings.database_url, staging)
        excluded = datadir.master_key_paths(settings.data_dir, settings.master_key_file)
        excluded |= {path, tmp}
        if engine == "sqlite":
            excluded |= set(store.sqlite_sidecars(store.sqlite_path(settings.database_url)))
        salt = os.urandom(32)
        header = {
            "format": archive.FORMAT,
            "producer": "propdev",
            "created_at": _now(),
            "engine": engine,
            "schema_version": max(snap.schema_versions, default=0),
            "schema_versions": snap.schema_versions,
            "cluster_id": snap.cluster_id,
            "cipher": "AES-256-GCM",
            "kdf": "HKDF-SHA256",
            "salt": salt.hex(),
            "key_check": archive.key_check(master, salt),
            "chunk_size": archive.CHUNK,
        }
        parts: list[dict[str, Any]] = []
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as out:
                writer = archive.EncryptingWriter(out, header, master)
                with tarfile.open(fileobj=writer, mode="w|gz") as tar:  # type: ignore[call-overload]
                    for name in snap.files:
                        part = staging / name
                        size = part.stat().st_size
                        with part.open("rb") as fh:
                            _add(tar, name, fh, size, part.stat().st_mtime)
                        parts.append({"name": name, "size": size, "sha256": _sha256(part)})
                    for relative in datadir.key_material(settings.data_dir, excluded):
                        source = settings.data_dir / relative
                        try:
                            data, mtime = source.read_bytes(), source.stat().st_mtime
                        except FileNotFoundError:  # removed while we walked (a temp file)
                            continue
                        name = "data/" + relative.as_posix()
                        _add(tar, name, io.BytesIO(data), len(data), mtime)
                        digest = hashlib.sha256(data).hexdigest()
                        parts.append({"name": name, "size": len(data), "sha256": digest})
                    manifest = json.dumps(
                        {**header, "parts": parts, "tables": snap.tables}, indent=1
                    ).encode()
                    now = dt.datetime.now(dt.UTC).timestamp()
                    _add(tar, MANIFEST, io.BytesIO(manifest), len(manifest), now)
                writer.close()
                out.flush()
                os.fsync(out.fileno())
            try:
                os.link(tmp, path)
            except FileExistsError:
                raise BackupError(f"{path} exists: a backup never overwrites a file") from None
        finally:
            tmp.unlink(missing_ok=True)
    # Recorded after the snapshot (a restore of this file does not claim itself as made).
    size = path.stat().st_size
    asyncio.run(_record_run(settings.database_url, time.time(), size, identity))
    return {
        "file": str(path),
        "bytes": path.stat().st_size,
        "engine": engine,
        "cluster_id": snap.cluster_id,
        "schema_version": header["schema_version"],
        "created_at": header["created_at"],
        "store_files": len(snap.files),
        "data_files": sum(1 for p in parts if p["name"].startswith("data/")),
        "rows": sum(snap.tables.values()),
    }


# -- read and check ------------------------------------------------------------------------------


def describe(path: Path) -> dict[str, Any]:
    """The backup's public header, read without any key."""
    with _open(path) as src:
        return archive.read_header(src)


@contextlib.contextmanager
def _open(path: Path) -> Iterator[IO[bytes]]:
    try:
        fh = path.open("rb")
    except FileNotFoundError:
        raise BackupError(f"{path}: no such file") from None
    with fh:
        yield fh


def _unpack(path: Path, master: bytes, staging: Path) -> dict[str, Any]:
    """Authenticate and unpack the backup at ``path`` into ``staging``; check every part
    against the manifest; return the manifest."""
    with _open(path) as src:
        header = archive.read_header(src)
        reader = archive.DecryptingReader(src, header, master)
        try:
            with tarfile.open(fileobj=reader, mode="r|gz") as tar:  # type: ignore[call-overload]
                for member in tar:
                    name = member.name
                    if not member.isfile() or not (
                        name == MANIFEST or name.startswith(("store/", "data/"))
                    ):
                        raise DamagedBackupError(f"damaged: unexpected member {name!r}")
                    tar.extract(member, staging, filter="data")
            reader.drain()
        except (tarfile.TarError, EOFError, zlib.error) as exc:
            raise DamagedBackupError(f"damaged: the archive does not unpack ({exc})") from None
    try:
        manifest: dict[str, Any] = json.loads((staging / MANIFEST).read_text())
    except (OSError, ValueError):
        raise DamagedBackupError("damaged: no readable manifest") from None
    for key in ("format", "engine", "cluster_id", "schema_versions", "created_at", "salt"):
        if manifest.get(key) != header.get(key):
            raise DamagedBackupError(f"damaged: the manifest's {key} differs from the header's")
    listed = {str(p["name"]) for p in manifest["parts"]}
    found = {
        p.relative_to(staging).as_posix()
        for p in staging.rglob("*")
        if p.is_file() and p.name != MANIFEST
    }
    if found != listed:
        raise DamagedBackupError(
            f"damaged: parts missing {sorted(listed - found)[:3]} or unlisted "
            f"{sorted(found - listed)[:3]}"
        )
    for part in manifest["parts"]:
        file = staging / str(part["name"])
        if file.stat().st_size != part["size"] or _sha256(file) != part["sha256"]:
            raise DamagedBackupError(f"damaged: {part['name']} does not match its checksum")
    store.check_versions([int(v) for v in manifest["schema_versions"]])
    return manifest


def _summary(manifest: dict[str, Any]) -> dict[str, Any]:
    return {
        "engine": manifest["engine"],
        "cluster_id": manifest["cluster_id"],
        "created_at": manifest["created_at"],
        "schema_version": manifest["schema_version"],
        "data_files": sum(1 for p in manifest["parts"] if str(p["name"]).startswith("data/")),
        "rows": sum(int(n) for n in manifest.get("tables", {}).values()),
    }


def verify(settings: Settings, path: Path) -> dict[str, Any]:
    """Authenticate the whole backup and check its parts; write nothing."""
    master = configured_master_key(settings)
    with tempfile.TemporaryDirectory(prefix=".propdev-verify-") as work:
        manifest = _unpack(path, master, Path(work))
    return {"file": str(path), "ok": True, **_summary(manifest)}


# -- restore -----------------------------------------------------------------------------------


def _check_targets(settings: Settings, engine: str) -> None:
    allowed = datadir.master_key_paths(settings.data_dir, settings.master_key_file)
    if engine == "sqlite":
        db_path = store.sqlite_path(settings.database_url)
        if not store.sqlite_is_empty(db_path):
            raise TargetNotEmptyError(f"the SQLite store {db_path} is not empty")
        allowed |= set(store.sqlite_sidecars(db_path))
    else:
        occupant = store.postgres_occupant(settings.database_url)
        if occupant is not None:
            raise TargetNotEmptyError(f"the PostgreSQL store is not empty: {occupant}")
    datadir.check_empty(settings.data_dir, allowed)


def restore(settings: Settings, path: Path) -> dict[str, Any]:
    """Fill the empty data dir and store the settings name from the backup at ``path``."""
    header = describe(path)
    master = configured_master_key(settings)
    engine = store.engine_of(settings.database_url)
    if header.get("engine") != engine:
        raise BackupError(
            f"the backup is of a {header.get('engine')} store; PROPDEV_DATABASE_URL names a "
            f"{engine} one (restore into the engine it was made from)"
        )
    with _open(path) as src:  # the key, before anything is written
        archive.DecryptingReader(src, archive.read_header(src), master)
    _check_targets(settings, engine)
    data_dir = settings.data_dir
    made_data_dir = not data_dir.exists()
    try:
        with datadir.staging_dir(data_dir) as staging:
            manifest = _unpack(path, master, staging)
            _check_targets(settings, engine)  # again: nothing appeared while we unpacked
            files = [
                Path(str(p["name"]).removeprefix("data/"))
                for p in manifest["parts"]
                if str(p["name"]).startswith("data/")
            ]
            with datadir.install(staging / "data", data_dir, files):
                if engine == "sqlite":
                    target = store.sqlite_path(settings.database_url)
                    store.install_sqlite(staging / store.SQLITE_FILE, target)
                else:
                    store.load_postgres(settings.database_url, staging)
    except BaseException:
        if made_data_dir:
            with contextlib.suppress(OSError):
                data_dir.rmdir()  # only if empty again: the staging directory is gone
        raise
    return {
        "restored": str(path),
        "data_dir": str(data_dir),
        "store": engine,
        "schema_version_now": CURRENT_VERSION,
        **_summary(manifest),
    }
