"""A fresh PostgreSQL database per test on the machine's real server, dropped afterwards."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator

import psycopg

from tests.conftest import POSTGRES_URL


@contextlib.contextmanager
def fresh_database() -> Iterator[str]:
    name = f"propdev_test_{uuid.uuid4().hex[:12]}"
    admin = POSTGRES_URL + "postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield POSTGRES_URL + name
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
