"""A fresh PostgreSQL database per test on the machine's real server, dropped afterwards."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator

import psycopg

from tests.conftest import POSTGRES_URL


@contextlib.contextmanager
def fresh_database(server: str = POSTGRES_URL) -> Iterator[str]:
    """A new database on ``server`` (a URL ending with ``/``), dropped when the block ends."""
    name = f"propdev_test_{uuid.uuid4().hex[:12]}"
    admin = server + "postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield server + name
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
