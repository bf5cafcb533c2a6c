"""A private PostgreSQL primary and its streaming standby (``pg_basebackup -R``), each on its
own free port in its own temporary directory, for a test that stops the primary and promotes
the standby (``pg_ctl promote``).

The standby connects as ``application_name=standby1`` and the primary lists it in
``synchronous_standby_names`` (with ``synchronous_commit=on``, the default): a commit is
acknowledged only once the standby has flushed its WAL, so whatever a node answered 200 for is
on the standby when it is promoted. The price: while the standby is away, commits on the
primary wait (production runs two standbys with ``ANY 1 (…)``).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg

from tests.conftest import free_port
from tests.support.private_postgres import PrivatePostgres, _bin_dir, _kill_postmaster

STANDBY_NAME = "standby1"


@dataclass(frozen=True)
class StreamingPair:
    primary: PrivatePostgres
    standby: PrivatePostgres
    database: str

    def url(self, **query: str) -> str:
        """The libpq multi-host URL of the pair's database, primary first."""
        hosts = f"127.0.0.1:{self.primary.port},127.0.0.1:{self.standby.port}"
        params = "&".join(
            f"{k}={v}" for k, v in {"target_session_attrs": "read-write", **query}.items()
        )
        return f"postgresql://postgres@{hosts}/{self.database}?{params}"

    def promote(self) -> None:
        """Promote the standby and wait until it accepts writes (``pg_ctl promote -w``)."""
        self.standby._run(
            "pg_ctl", "promote", "-w", "-t", "60", "-D", str(self.standby.data / "db")
        )

    def sync_state(self) -> str | None:
        """The standby's ``sync_state`` as the primary sees it (``sync`` once synchronous)."""
        with psycopg.connect(f"{self.primary.url}postgres", autocommit=True) as conn:
            row = conn.execute(
                "SELECT sync_state FROM pg_stat_replication WHERE application_name = %s",
                (STANDBY_NAME,),
            ).fetchone()
        return None if row is None else str(row[0])

    def logs(self) -> str:
        return (
            f"--- primary\n{self.primary.log()[-3000:]}\n--- standby\n{self.standby.log()[-3000:]}"
        )


def _server(as_postgres: bool) -> PrivatePostgres:
    data = Path(tempfile.mkdtemp(prefix="propdev-pg-"))
    if as_postgres:
        shutil.chown(data, user="postgres", group="postgres")
    return PrivatePostgres(free_port(), data, _bin_dir(), as_postgres)


@contextlib.contextmanager
def streaming_pair(database: str = "propdev") -> Iterator[StreamingPair]:
    """initdb and start a primary with ``database``, base-back it up into a standby, start the
    standby and make it synchronous; always stop both and remove their directories."""
    as_postgres = os.geteuid() == 0
    primary = _server(as_postgres)
    standby = _server(as_postgres)
    try:
        primary._run(
            "initdb", "-D", str(primary.data / "db"), "-U", "postgres", "--auth=trust",
            "-E", "UTF8", "--no-sync",
        )  # fmt: skip
        primary.start()
        with psycopg.connect(f"{primary.url}postgres", autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{database}"')
        primary._run(
            "pg_basebackup", "-h", "127.0.0.1", "-p", str(primary.port), "-U", "postgres",
            "-D", str(standby.data / "db"), "-R", "-X", "stream", "--no-sync", "-c", "fast",
        )  # fmt: skip
        auto = standby.data / "db" / "postgresql.auto.conf"
        with auto.open("a") as fh:  # the last setting wins: name the standby for the primary
            fh.write(
                f"primary_conninfo = 'host=127.0.0.1 port={primary.port} user=postgres "
                f"application_name={STANDBY_NAME}'\n"
            )
        standby.start()
        with psycopg.connect(f"{primary.url}postgres", autocommit=True) as conn:
            conn.execute(f"ALTER SYSTEM SET synchronous_standby_names = '{STANDBY_NAME}'")
            conn.execute("SELECT pg_reload_conf()")
        yield StreamingPair(primary, standby, database)
    finally:
        for server in (standby, primary):
            try:
                if server.running():
                    server.stop("immediate")
            except AssertionError:
                _kill_postmaster(server.data / "db" / "postmaster.pid")
            finally:
                shutil.rmtree(server.data, ignore_errors=True)
