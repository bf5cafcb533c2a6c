"""The store's part of a backup: a consistent snapshot out, a load into an empty store.

**SQLite**: the online backup API (``sqlite3.Connection.backup``) copies every page in one
step, under one read transaction: a consistent snapshot, while the nodes go on writing (WAL
readers do not block the writer). The copy is checked (``PRAGMA quick_check``) and restored
as the database file itself.

**PostgreSQL**: every table of the store's schema, read with ``COPY … TO STDOUT`` inside one
``REPEATABLE READ READ ONLY`` transaction -- the snapshot ``pg_dump`` takes by default -- so
every table is read as of one instant while the nodes serve. A restore makes the schema
from propdev's own migrations (exactly the versions the backup had; the node's start then
migrates on as usual), loads the tables with ``COPY … FROM STDIN`` in foreign-key order and
sets each identity sequence, all in one transaction: it commits whole or not at all. No
``pg_dump``/``pg_restore`` binary is needed, nor one matching the server's major version.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from propdev.backup.errors import BackupError, TargetNotEmptyError, UnsupportedBackupError
from propdev.storage.migrations import (
    MIGRATIONS,
    SCHEMA_TABLE,
    SCHEMA_TABLE_DDL,
    schema_statements,
)

SQLITE_FILE = "store/propdev.db"
PG_SCHEMA = "store/schema.json"
IDENTITY_TABLE = "cluster_identity"


@dataclass(slots=True)
class Snapshot:
    """What a store snapshot wrote into the staging directory, and what it found."""

    engine: str
    files: list[str]  # relative to the staging directory
    schema_versions: list[int]
    cluster_id: str | None
    tables: dict[str, int] = field(default_factory=dict)  # rows per table


def engine_of(url: str) -> str:
    if url.startswith("sqlite"):
        return "sqlite"
    if url.startswith(("postgresql", "postgres")):
        return "postgresql"
    raise BackupError(f"unsupported database URL scheme: {url.split(':', 1)[0]}")


def sqlite_path(url: str) -> Path:
    """The file of a ``sqlite:///`` URL (as ``propdev.storage`` reads it); not in memory."""
    path = url.split(":", 1)[1].removeprefix("///").split("?", 1)[0]
    if path in ("", "//", ":memory:"):
        raise BackupError("an in-memory SQLite store has nothing to back up or restore into")
    return Path(path)


def sqlite_sidecars(path: Path) -> tuple[Path, ...]:
    """The database file and the files SQLite keeps beside it."""
    return (path, *(path.with_name(path.name + s) for s in ("-wal", "-shm", "-journal")))


def postgres_url(url: str) -> str:
    """A libpq URL for psycopg (``postgres://`` and ``postgresql+driver://`` accepted)."""
    scheme, rest = url.split("://", 1)
    return "postgresql://" + rest if scheme.startswith(("postgres", "postgresql")) else url


# -- snapshot -----------------------------------------------------------------------------------


def snapshot(url: str, staging: Path) -> Snapshot:
    """Write a consistent snapshot of the store at ``url`` under ``staging``."""
    if engine_of(url) == "sqlite":
        return _snapshot_sqlite(sqlite_path(url), staging)
    return _snapshot_postgres(postgres_url(url), staging)


def _snapshot_sqlite(path: Path, staging: Path) -> Snapshot:
    if not path.exists():
        raise BackupError(f"no SQLite store at {path}")
    target = staging / SQLITE_FILE
    target.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.closing(sqlite3.connect(path, timeout=30)) as src:
        with contextlib.closing(sqlite3.connect(target)) as dst:
            src.backup(dst)  # pages=-1: every page in one step, one read transaction
    with contextlib.closing(sqlite3.connect(target)) as copy:
        check = copy.execute("PRAGMA quick_check").fetchone()
        if check is None or check[0] != "ok":
            raise BackupError(f"the SQLite snapshot does not pass quick_check: {check}")
        versions = [int(r[0]) for r in copy.execute(f"SELECT version FROM {SCHEMA_TABLE}")]
        row = copy.execute(f"SELECT id FROM {IDENTITY_TABLE} WHERE singleton = 1").fetchone()
        names = [
            str(r[0])
            for r in copy.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
            )
        ]
        tables = {n: int(copy.execute(f'SELECT count(*) FROM "{n}"').fetchone()[0]) for n in names}
    return Snapshot("sqlite", [SQLITE_FILE], sorted(versions), str(row[0]) if row else None, tables)


def _tables_in_order(conn: psycopg.Connection[Any]) -> list[str]:
    """The schema's tables, each after the tables its foreign keys reference."""
    names = [
        str(r[0])
        for r in conn.execute(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p')"
            " ORDER BY c.relname"
        )
    ]
    needs: dict[str, set[str]] = {name: set() for name in names}
    for child, parent in conn.execute(
        "SELECT c.conrelid::regclass::text, c.confrelid::regclass::text FROM pg_constraint c"
        " JOIN pg_namespace n ON n.oid = c.connamespace"
        " WHERE c.contype = 'f' AND n.nspname = current_schema()"
    ):
        child, parent = str(child).strip('"'), str(parent).strip('"')
        if child in needs and parent in needs and child != parent:
            needs[child].add(parent)
    ordered: list[str] = []
    while needs:
        ready = sorted(n for n, deps in needs.items() if not deps - set(ordered))
        if not ready:
            raise BackupError(f"foreign keys form a cycle among {sorted(needs)}")
        for name in ready:
            ordered.append(name)
            del needs[name]
    return ordered


def _columns(conn: psycopg.Connection[Any], table: str) -> list[str]:
    return [
        str(r[0])
        for r in conn.execute(
            "SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass"
            " AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
            (sql.Identifier(table).as_string(conn),),
        )
    ]


def _sequences(
    conn: psycopg.Connection[Any], table: str, columns: list[str]
) -> list[dict[str, Any]]:
    found = []
    for column in columns:
        row = conn.execute(
            "SELECT pg_get_serial_sequence(%s, %s)",
            (sql.Identifier(table).as_string(conn), column),
        ).fetchone()
        if row is None or row[0] is None:
            continue
        state = conn.execute(
            sql.SQL("SELECT last_value, is_called FROM {}").format(sql.SQL(row[0]))
        ).fetchone()
        assert state is not None
        found.append({"column": column, "last_value": int(state[0]), "is_called": bool(state[1])})
    return found


def _snapshot_postgres(url: str, staging: Path) -> Snapshot:
    (staging / "store").mkdir(parents=True, exist_ok=True)
    tables: list[dict[str, Any]] = []
    with psycopg.connect(url) as conn:
        conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        order = _tables_in_order(conn)
        if SCHEMA_TABLE not in order:
            raise BackupError("the PostgreSQL store has no schema_version table: not propdev's")
        versions = sorted(int(r[0]) for r in conn.execute(f"SELECT version FROM {SCHEMA_TABLE}"))
        cluster: str | None = None
        if IDENTITY_TABLE in order:
            row = conn.execute(f"SELECT id FROM {IDENTITY_TABLE} WHERE singleton = 1").fetchone()
            cluster = str(row[0]) if row else None
        for number, table in enumerate(order):
            columns = _columns(conn, table)
            name = f"store/{number:03d}-{table}.copy"
            statement = sql.SQL("COPY {} ({}) TO STDOUT").format(
                sql.Identifier(table), sql.SQL(", ").join(map(sql.Identifier, columns))
            )
            rows = 0
            with (staging / name).open("wb") as out, conn.cursor() as cur:
                with cur.copy(statement) as copy:
                    for data in copy:
                        out.write(data)
                rows = cur.rowcount
            tables.append(
                {
                    "name": table,
                    "file": name,
                    "columns": columns,
                    "rows": rows,
                    "sequences": _sequences(conn, table, columns),
                }
            )
        conn.execute("COMMIT")
    schema = {"engine": "postgresql", "schema_versions": versions, "tables": tables}
    (staging / PG_SCHEMA).write_text(json.dumps(schema, indent=1, sort_keys=True))
    files = [PG_SCHEMA, *(t["file"] for t in tables)]
    counts = {t["name"]: int(t["rows"]) for t in tables}
    return Snapshot("postgresql", files, versions, cluster, counts)


# -- restore ------------------------------------------------------------------------------------


def check_versions(versions: list[int]) -> None:
    """Refuse a backup whose schema has versions this code does not know."""
    unknown = set(versions) - {v for v, _, _ in MIGRATIONS}
    if unknown:
        raise UnsupportedBackupError(
            f"the backup's schema has versions {sorted(unknown)} that this propdev does not "
            "know: restore it with the propdev that made it (or a newer one)"
        )


def sqlite_is_empty(path: Path) -> bool:
    """True when there is no database at ``path`` or it has no tables (and no journal)."""
    if not path.exists():
        return not any(p.exists() and p.stat().st_size for p in sqlite_sidecars(path)[1:])
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
        try:
            row = conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        except sqlite3.DatabaseError:
            return False  # not a database: not ours to overwrite
    return row is not None and row[0] == 0


def postgres_occupant(url: str) -> str | None:
    """None when the schema of the store at ``url`` is empty; else what is in it."""
    with psycopg.connect(postgres_url(url)) as conn:
        return _occupant(conn)


def _occupant(conn: psycopg.Connection[Any]) -> str | None:
    rows = conn.execute(
        "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p', 'v', 'm', 'S')"
        " ORDER BY c.relname"
    ).fetchall()
    if not rows:
        return None
    names = [str(r[0]) for r in rows]
    cluster = ""
    if IDENTITY_TABLE in names:
        row = conn.execute(f"SELECT id FROM {IDENTITY_TABLE} WHERE singleton = 1").fetchone()
        cluster = f", the store of cluster {row[0]}" if row else ""
    shown = ", ".join(names[:5]) + (", …" if len(names) > 5 else "")
    return f"{len(names)} tables and sequences ({shown}){cluster}"


def install_sqlite(staged: Path, target: Path) -> None:
    """Put the staged database at ``target``: copied beside it, then linked into place (which
    fails if another process made the file meanwhile)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.restore-{os.getpid()}")
    with staged.open("rb") as src, tmp.open("xb") as dst:
        while block := src.read(1 << 20):
            dst.write(block)
        dst.flush()
        os.fsync(dst.fileno())
    try:
        for stale in sqlite_sidecars(target)[1:]:
            stale.unlink(missing_ok=True)  # empty journals of an empty store
        if target.exists():  # an empty database (no tables), checked by the caller
            os.replace(tmp, target)
        else:
            os.link(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    _fsync_dir(target.parent)


def load_postgres(url: str, staging: Path) -> None:
    """Make the schema and load every table of the staged export, in one transaction."""
    schema = json.loads((staging / PG_SCHEMA).read_text())
    versions = [int(v) for v in schema["schema_versions"]]
    check_versions(versions)
    with psycopg.connect(postgres_url(url)) as conn, conn.transaction():
        occupant = _occupant(conn)
        if occupant is not None:
            raise TargetNotEmptyError(f"the PostgreSQL store is not empty: {occupant}")
        conn.execute(SCHEMA_TABLE_DDL)  # a backup from before its kind column loads into it too
        for statement in schema_statements("postgresql", versions):
            conn.execute(statement)
        for table in schema["tables"]:
            name, columns = str(table["name"]), [str(c) for c in table["columns"]]
            copy_in = sql.SQL("COPY {} ({}) FROM STDIN").format(
                sql.Identifier(name), sql.SQL(", ").join(map(sql.Identifier, columns))
            )
            with conn.cursor() as cur, cur.copy(copy_in) as copy:
                with (staging / str(table["file"])).open("rb") as src:
                    while block := src.read(1 << 20):
                        copy.write(block)
            for seq in table["sequences"]:
                conn.execute(
                    sql.SQL(
                        "SELECT setval(pg_get_serial_sequence({t}, {c}),"
                        " GREATEST({v}, (SELECT COALESCE(max({col}), 1) FROM {tab})), {called})"
                    ).format(
                        t=sql.Literal(sql.Identifier(name).as_string(conn)),
                        c=sql.Literal(seq["column"]),
                        v=sql.Literal(int(seq["last_value"])),
                        col=sql.Identifier(seq["column"]),
                        tab=sql.Identifier(name),
                        called=sql.Literal(bool(seq["is_called"])),
                    )
                )


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
