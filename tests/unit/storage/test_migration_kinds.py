"""Every migration not declared a contract step only adds (docs/upgrades.md, "Expand steps"):
the release before it keeps running on the schema it makes, through a rolling upgrade.

Read from the statements' text, nothing is run: a new table, an index (unique only on a table of
the same migration), a column that is nullable or has a default. Anything else -- a drop, a
rename, a changed column, a rewrite of rows, a constraint on rows an older release writes --
belongs in ``CONTRACT_VERSIONS``.
"""

from __future__ import annotations

import re

import pytest

from propdev.storage.migrations import CONTRACT_VERSIONS, MIGRATIONS

_CREATE_TABLE = re.compile(r"CREATE TABLE (?:IF NOT EXISTS )?(\w+) ?\(")
_CREATE_INDEX = re.compile(r"CREATE (UNIQUE )?INDEX (?:IF NOT EXISTS )?\w+ ON (\w+) ?\(")
_ADD_COLUMN = re.compile(r"ALTER TABLE (\w+) ADD COLUMN (?:IF NOT EXISTS )?\w+ (.*)")


def not_additive(statement: str, created: set[str]) -> str | None:
    """Why ``statement`` is not additive, or None if it is; ``created``: the tables made by
    the statements of the same migration before it (a ``CREATE TABLE`` adds its own)."""
    text = re.sub(r"'[^']*'", "''", " ".join(statement.split())).upper()  # literals blanked
    if match := _CREATE_TABLE.match(text):
        created.add(match[1])
        return None
    if match := _CREATE_INDEX.match(text):
        if match[1] and match[2] not in created:
            return "a unique index on an existing table: an older release may write duplicates"
        return None
    if match := _ADD_COLUMN.match(text):
        column = match[2]
        if re.search(r"\bNOT NULL\b", column) and not re.search(r"\bDEFAULT\b", column):
            return "a NOT NULL column without a DEFAULT: an older release's INSERT fails"
        if found := re.search(r"\b(UNIQUE|PRIMARY KEY|CHECK)\b", column):
            return f"a new column with {found[1]}: rows an older release writes may break it"
        return None
    return "not CREATE TABLE, CREATE INDEX or ALTER TABLE ... ADD COLUMN"


EXPAND_STEPS = [m for m in MIGRATIONS if m[0] not in CONTRACT_VERSIONS]


@pytest.mark.parametrize(
    ("version", "statements"),
    [(v, s) for v, _, s in EXPAND_STEPS],
    ids=[f"migration-{v}" for v, _, _ in EXPAND_STEPS],
)
def test_each_expand_step_only_adds(version: int, statements: list[str]) -> None:
    created: set[str] = set()
    found = {s: why for s in statements if (why := not_additive(s, created)) is not None}
    assert found == {}, f"migration {version} is not additive; declare it a contract step"


def test_the_contract_steps_are_migrations() -> None:
    assert set(CONTRACT_VERSIONS) <= {v for v, _, _ in MIGRATIONS}


@pytest.mark.parametrize(
    "statement",
    [
        "DROP TABLE device_state",
        "DROP INDEX audit_at",
        "ALTER TABLE audit DROP COLUMN personal",
        "ALTER TABLE users RENAME COLUMN phone TO mobile",
        "ALTER TABLE users RENAME TO people",
        "ALTER TABLE audit ALTER COLUMN subject SET NOT NULL",
        "UPDATE users SET phone = ''",
        "DELETE FROM idempotency",
        "ALTER TABLE users ADD COLUMN locale TEXT NOT NULL",
        "ALTER TABLE users ADD COLUMN\n    locale TEXT  NOT   NULL",
        "ALTER TABLE users ADD COLUMN email TEXT UNIQUE",
        "ALTER TABLE rights ADD COLUMN n INTEGER DEFAULT 0 CHECK (n >= 0)",
        "CREATE UNIQUE INDEX users_phone ON users (phone)",
    ],
)
def test_a_statement_that_removes_changes_or_constrains_is_not_additive(statement: str) -> None:
    assert not_additive(statement, set()) is not None


@pytest.mark.parametrize(
    "statements",
    [
        ["CREATE TABLE things (id TEXT PRIMARY KEY, n INTEGER NOT NULL, UNIQUE (n))"],
        ["CREATE TABLE things (id TEXT PRIMARY KEY)", "CREATE UNIQUE INDEX t_id ON things (id)"],
        ["CREATE INDEX users_phone ON users (phone)"],
        ["ALTER TABLE users ADD COLUMN locale TEXT"],
        ["ALTER TABLE users ADD COLUMN locale TEXT NOT NULL DEFAULT 'ru'"],
        ["ALTER TABLE rights ADD COLUMN n INTEGER REFERENCES users(id)"],
    ],
)
def test_new_tables_indexes_and_nullable_or_defaulted_columns_are_additive(
    statements: list[str],
) -> None:
    created: set[str] = set()
    assert [not_additive(s, created) for s in statements] == [None] * len(statements)
