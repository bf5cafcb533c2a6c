"""A data key per person, so that erasing a person shreds every copy of their sealed values.

``person_keys`` holds one random 32-byte key per user (``user_id``), wrapped as a sealed
value of the store's primary data key (``Vault.wrap_person_key``; ``kid`` names that data
key, so ``keys rotate`` and ``reencrypt`` re-wrap it). It is made when first needed -- an
account's creation, the first value sealed for the person -- and deleted by erasure
(``propdev.privacy.erasure``), in the erasure's transaction.

Readers never fetch a key on their own: the queries that feed ``open_user_field`` and
``open_plate_value`` select the wrapped key with the row (``wrapped_key_of``), so a list of
residents is one query, and a row of an erased person comes with ``None``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from propdev.security.crypto import Vault
from propdev.storage import Database, Row, sync_run

KEY_COLUMN = "person_key"
"""The name of the wrapped person key in a row (``wrapped_key_of``)."""

_SELECT = "SELECT wrapped FROM person_keys WHERE user_id = :u"
_INSERT = (
    "INSERT INTO person_keys (user_id, wrapped, kid, created_at) "
    "VALUES (:u, :wrapped, :kid, :now) ON CONFLICT (user_id) DO NOTHING"
)


def wrapped_key_of(owner_column: str) -> str:
    """A select-list item: the wrapped person key of the user ``owner_column`` names, as
    ``person_key`` (NULL when they have none: never had one, or erased)."""
    return (
        f"(SELECT wrapped FROM person_keys WHERE person_keys.user_id = {owner_column})"
        f" AS {KEY_COLUMN}"
    )


def _create(run: Callable[..., list[Row]], vault: Vault, user_id: str) -> bytes:
    found = run(_SELECT, u=user_id)
    if found:
        return vault.unwrap_person_key(user_id, str(found[0]["wrapped"]))
    _key, wrapped = vault.new_person_key(user_id)
    run(_INSERT, u=user_id, wrapped=wrapped, kid=vault.primary_kid, now=time.time())
    found = run(_SELECT, u=user_id)  # another writer may have been first: its key wins
    return vault.unwrap_person_key(user_id, str(found[0]["wrapped"]))


def person_key_in(run: Callable[..., list[Row]], vault: Vault, user_id: str) -> bytes:
    """The person key of ``user_id``, made if there is none, through ``run(sql, **params)``
    (a ``UnitConnection.run``, or a sync connection's ``sync_run``): inside a transaction."""
    return _create(run, vault, user_id)


async def person_key(db: Database, vault: Vault, user_id: str) -> bytes:
    """The person key of ``user_id``, made (in its own statement) if there is none."""
    found = await db.fetch_one(_SELECT, u=user_id)
    if found is not None:
        return vault.unwrap_person_key(user_id, str(found["wrapped"]))
    _key, wrapped = vault.new_person_key(user_id)
    await db.execute(_INSERT, u=user_id, wrapped=wrapped, kid=vault.primary_kid, now=time.time())
    found = await db.fetch_one(_SELECT, u=user_id)
    assert found is not None
    return vault.unwrap_person_key(user_id, str(found["wrapped"]))


def sync_runner(conn: Any) -> Callable[..., list[Row]]:
    """``run(sql, **params)`` over a SQLAlchemy sync connection."""
    return lambda sql, **params: sync_run(conn, sql, **params)
