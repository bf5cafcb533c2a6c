"""Erasure of a resident's personal data (152-FZ art. 21), in one transaction.

What is destroyed, and how (``docs/personal-data.md`` says why):

* ``person_keys``: the resident's data key is deleted (crypto-shredding): the name, phone,
  TOTP secret, plates and audit personal fields sealed under it cannot be opened again,
  wherever a copy of them is left (dead tuples, WAL, replicas, logs, a stray dump).
* ``users``: the row stays as an empty tombstone (other rows name its id): username
  ``~erased:<id>`` (no invitation can take it), name, phone, its blind index and the TOTP
  secret blanked, no roles, a password hash nothing verifies against.
* deleted: rights, vehicles (plates), guest passes and their access points, refresh tokens
  and authorization codes (sessions end), push tokens and pending pushes, recovery codes,
  the TOTP replay guard, events, commands and their steps, cached answers (idempotency).
* ``residencies``: the apartment and the move-in date are forgotten; the row says "moved out
  now", so that a node starting within a token lifetime refuses their access tokens again.
* ``audit``: entries stay (they are the chain), their personal fields are blanked where the
  resident is the subject or the actor; the chain still verifies (only a digest is hashed).
* ``meter_readings`` stay: they are the apartment's readings sent to the utilities system
  (billing records), and now name an emptied account.

An ``erasures`` row records the id, time and operator (an erasure re-applied after a restore,
``propdev.privacy.reapply``, keeps the original's); a second erasure is refused
(``AlreadyErasedError``) with nothing changed. The audit entry ``resident.erase`` carries
counts, no personal data. Once committed, the resident's access tokens are refused on every
node (``cut``, the move-out's cut-off).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from propdev.privacy.erasure_list import Erasure
from propdev.privacy.errors import AlreadyErasedError, UnknownPersonError
from propdev.privacy.export import RESIDENT_ROLE, user_actor
from propdev.security import NoKeyStoreError, vault_of
from propdev.storage import Database, run
from propdev.storage import audit as audit_log
from propdev.storage.audit import AuditRecord

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection

ERASED_HASH = "!erased"  # not an Argon2 hash: no password verifies against it
Cut = Callable[[str, float], Awaitable[None]]


def erased_username(user_id: str) -> str:
    return f"~erased:{user_id}"


def erase_entry(at: float, actor: str, user_id: str, reason: str) -> AuditRecord:
    """The ``resident.erase`` audit entry of ``user_id`` (nothing personal in it)."""
    return AuditRecord(
        at=at,
        actor=actor,
        action="resident.erase",
        access_point_id=None,
        decision="granted",
        reason=f"user_id={user_id} {reason}",
        subject=user_id,
    )


def reapplied_reason(original: Erasure) -> str:
    """What a re-applied erasure's audit entry says of the original (ids and a time only)."""
    return f"reapplied erased_at={original.erased_at!r} erased_by={original.actor}"


@dataclass(frozen=True, slots=True)
class ErasureReport:
    user_id: str
    erased_at: float
    counts: dict[str, int]


# (count key, statement deleting the resident's rows, its parameter is :u)
_DELETIONS: tuple[tuple[str, str], ...] = (
    ("rights", "DELETE FROM rights WHERE user_id = :u"),
    ("vehicles", "DELETE FROM vehicles WHERE owner_id = :u"),
    (
        "guest_pass_access_points",
        "DELETE FROM guest_pass_access_points WHERE pass_id IN "
        "(SELECT id FROM guest_passes WHERE owner_id = :u)",
    ),
    ("guest_passes", "DELETE FROM guest_passes WHERE owner_id = :u"),
    ("sessions", "DELETE FROM oauth_refresh_tokens WHERE user_id = :u"),
    ("authorization_codes", "DELETE FROM oauth_codes WHERE user_id = :u"),
    ("recovery_codes", "DELETE FROM user_recovery_codes WHERE user_id = :u"),
    ("account_codes", "DELETE FROM account_codes WHERE user_id = :u"),  # reset, activation
    ("totp_steps", "DELETE FROM user_totp_steps WHERE user_id = :u"),
    ("push_outbox", "DELETE FROM push_outbox WHERE user_id = :u"),
    ("push_tokens", "DELETE FROM push_tokens WHERE user_id = :u"),
    ("events", "DELETE FROM events WHERE user_id = :u"),
    (
        "command_steps",
        "DELETE FROM command_steps WHERE command_id IN "
        "(SELECT id FROM commands WHERE user_id = :u)",
    ),
    ("commands", "DELETE FROM commands WHERE user_id = :u"),
    ("cached_answers", "DELETE FROM idempotency WHERE subject = :u"),
    # Crypto-shredding: every value sealed under the person's key (name, phone, TOTP secret,
    # plates, audit personal fields), wherever a copy of it survives, is now unreadable.
    ("person_keys", "DELETE FROM person_keys WHERE user_id = :u"),
)
_REPORTED = (
    "rights",
    "vehicles",
    "guest_passes",
    "sessions",
    "events",
    "commands",
    "person_keys",
)


async def _count_then_delete(conn: AsyncConnection, statement: str, user_id: str) -> int:
    """Run a ``DELETE FROM t WHERE ...`` and return how many rows it removed (counted first,
    in the same transaction: SQLite's sessions answer no row count)."""
    table_and_where = statement.removeprefix("DELETE FROM ")
    rows = await run(conn, f"SELECT COUNT(*) AS n FROM {table_and_where}", u=user_id)
    await run(conn, statement, u=user_id)
    return int(rows[0]["n"])


async def erase(
    db: Database,
    actor: str,
    user_id: str,
    *,
    cut: Cut,
    clock: Callable[[], float] = time.time,
    reapplying: Erasure | None = None,
) -> ErasureReport:
    """Erase the resident ``user_id``; ``UnknownPersonError`` if there is none,
    ``AlreadyErasedError`` if they were erased (nothing changed either way).

    ``reapplying``: the erasure made elsewhere (a store that lived on after the backup this
    one was restored from) that this one repeats: the ``erasures`` row keeps its time and
    operator, and the audit entry (by ``actor``) says ``reapplied erased_at=<its time>``."""
    now = clock()
    recorded = reapplying or Erasure(user_id, now, actor)
    async with db.transaction() as conn:
        done = await run(conn, "SELECT erased_at FROM erasures WHERE user_id = :u", u=user_id)
        if done:
            raise AlreadyErasedError(user_id, float(done[0]["erased_at"]))
        found = await run(conn, "SELECT roles FROM users WHERE id = :u", u=user_id)
        if not found or RESIDENT_ROLE not in str(found[0]["roles"]).split(","):
            raise UnknownPersonError(user_id)
        taken = await run(
            conn,
            "INSERT INTO erasures (user_id, erased_at, actor) VALUES (:u, :t, :a) "
            "ON CONFLICT (user_id) DO NOTHING RETURNING user_id",
            u=user_id,
            t=recorded.erased_at,
            a=recorded.actor,
        )
        if not taken:  # erased at this very moment by another request
            raise AlreadyErasedError(user_id, now)
        counts = {key: await _count_then_delete(conn, sql, user_id) for key, sql in _DELETIONS}
        await run(
            conn,
            "UPDATE users SET username = :name, password_hash = :h, roles = '', full_name = '', "
            "phone = '', phone_index = NULL, totp_secret = NULL WHERE id = :u",
            name=erased_username(user_id),
            h=ERASED_HASH,
            u=user_id,
        )
        kept = await run(
            conn,
            "UPDATE residencies SET apartment_id = NULL, since = :t, moved_out_at = :t "
            "WHERE user_id = :u RETURNING user_id",
            t=now,
            u=user_id,
        )
        if not kept:
            await run(
                conn,
                "INSERT INTO residencies (user_id, apartment_id, since, moved_out_at) "
                "VALUES (:u, NULL, :t, :t)",
                u=user_id,
                t=now,
            )
        blanked = await run(
            conn,
            "SELECT COUNT(*) AS n FROM audit WHERE (subject = :u OR actor = :a) "
            "AND personal IS NOT NULL",
            u=user_id,
            a=user_actor(user_id),
        )
        await run(
            conn,
            "UPDATE audit SET personal = NULL WHERE (subject = :u OR actor = :a) "
            "AND personal IS NOT NULL",
            u=user_id,
            a=user_actor(user_id),
        )
        counts["audit_personal_blanked"] = int(blanked[0]["n"])
        reason = " ".join(f"{k}={counts[k]}" for k in (*_REPORTED, "audit_personal_blanked"))
        if reapplying is not None:
            reason = f"{reapplied_reason(reapplying)} {reason}"
        await audit_log.append(conn, db.dialect, erase_entry(now, actor, user_id, reason))
    with contextlib.suppress(NoKeyStoreError):  # no vault: no key of theirs held here
        vault_of(db).forget_person_keys()
    await cut(user_id, now)
    return ErasureReport(user_id, now, counts)
