"""The audit log: every access decision, in append order, each entry's hash chained to the last.

``hash = sha256(prev_hash || body)`` in hex, ``prev_hash`` being the previous entry's hash as
64 ASCII hex digits (``GENESIS`` before the first); an edited, inserted or deleted entry breaks
the chain, which ``verify`` finds. Each entry records the format of its ``body`` in
``hash_format``, so chains written before a format change still verify and may be mixed:

* 2 (written since schema version 15): the msgpack array ``[2, at, actor, action,
  access_point_id, decision, reason, command_id]``, ``at`` as a float 64, ``None`` as nil,
  strings in the smallest str format (what ``msgpack.packb`` writes). The format number is
  hashed, so changing an entry's ``hash_format`` breaks the chain too.
* 1 (entries written before): the entry as JSON, sorted keys, no spaces.
* 3 (written since schema version 16): the msgpack array ``[3, at, actor, action,
  access_point_id, decision, reason, command_id, chain, subject, personal_digest]``. Personal
  fields (an attempted username, a source address, ...) are not hashed themselves: they are
  stored apart in ``personal`` (canonical JSON) and only their SHA-256, ``personal_digest``,
  is in the chain, so that erasure and retention can blank ``personal`` and the chain still
  verifies (``verify`` checks the digest while ``personal`` is there). ``subject`` is the id
  of the person the entry concerns (a resident's or staff member's user id), the key of
  export, erasure and retention; ``chain`` is the chain the entry belongs to.

* 4 (written since schema version 33): as 3 with 4 first, ``[4, at, …, subject,
  personal_digest]``, but ``personal`` is stored **sealed** -- under the person key of the
  entry's subject when they have one, else under the store's data key
  (``propdev.security.audit_personal``) -- and ``personal_digest`` is the SHA-256 of that
  stored sealed text. Its random salt and nonce make the digest say nothing about the clear
  fields: once the text is blanked, or its person key destroyed by erasure, nothing of them
  is left, not even a digest a dictionary could reverse (format 3's digest of the clear JSON
  could be). ``verify`` needs no key: it hashes the stored text. A record sealed before
  ``append`` (``AuditRecord.sealed``) is written in format 4; one with clear ``personal``
  only (no vault at hand: tests of this module) in format 3.

Chains (schema version 17): the log is ``CHAINS`` hash chains, not one. ``append`` puts each
entry on ``chain_of(record)``: a door's entries on the chain of the door's shard (the shard
``propdev.registry.shard_of`` gives its device actor), entries without a door on the chain of
their subject's id, else of their actor's. It locks only that chain (on PostgreSQL the
advisory lock ``(_LOCK_KEY, chain)``; SQLite has one writer anyway) and links the entry to that
chain's last entry. Entries written before chains (formats 1 and 2, and format 3 before
version 17) are all chain 0: the old global chain is chain 0's prefix. ``verify`` checks each
chain on its own; signed checkpoints over the chains' heads (``propdev.integrity``) make a
truncated chain visible.

Each committed entry is also logged, once its transaction has committed (never one rolled
back), as the event ``audit_entry`` (``publish``): the audit stream of the log pipeline, a
copy for search and alerting, not the record. It carries every field but the personal ones
(and their digest), which must stay erasable, and goes out whatever the log level.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, fields, replace
from typing import TYPE_CHECKING, Any

import msgpack
import structlog

from propdev.storage.db import Database, Row, UnitConnection, after_commit, run, unit_lock

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection

GENESIS = "0" * 64
# PostgreSQL advisory lock space of the chains: ``pg_advisory_xact_lock(_LOCK_KEY, chain)``
# (the two-int form; 74202 alone, the one-bigint form, was the old global lock).
_LOCK_KEY = 74202
CHAINS = 64  # = propdev.registry.SHARDS: one chain per shard (a test holds them equal)
# The audit stream: info whatever PROPDEV_LOG_LEVEL filters (it is not a diagnostic).
_stream = structlog.wrap_logger(
    None, wrapper_class=structlog.make_filtering_bound_logger(logging.INFO)
)
STREAM_EVENT = "audit_entry"
STREAM_FIELDS = (
    "id",
    "chain",
    "at",
    "actor",
    "action",
    "access_point_id",
    "decision",
    "reason",
    "command_id",
    "subject",
    "prev_hash",
    "hash",
)
"""What an ``audit_entry`` log event carries of a stored entry: never ``personal``."""


@dataclass(frozen=True, slots=True)
class AuditRecord:
    at: float
    actor: str
    action: str
    access_point_id: str | None
    decision: str
    reason: str = ""
    command_id: str | None = None
    chain: int = 0
    subject: str | None = None
    personal: Mapping[str, str] | None = None  # personal fields, outside the hash (see above)
    sealed: str | None = None  # ``personal`` as stored in format 4 (sealed), if sealed


_FIELDS = tuple(f.name for f in fields(AuditRecord) if f.name != "sealed")
_V2_FIELDS = _FIELDS[: _FIELDS.index("command_id") + 1]  # what formats 1 and 2 cover


def _as_dict(record: AuditRecord) -> dict[str, Any]:
    """``asdict(record)`` without its recursive copy (a third of ``entry_hash``'s time)."""
    return {name: getattr(record, name) for name in _FIELDS}


def personal_text(personal: Mapping[str, str] | None) -> str | None:
    """The stored form of an entry's personal fields: canonical JSON, ``None`` if none."""
    if not personal:
        return None
    return json.dumps(dict(personal), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def personal_digest(text: str | None) -> str | None:
    """The SHA-256 (hex) of the stored personal fields, the part of them the chain covers."""
    return None if text is None else hashlib.sha256(text.encode()).hexdigest()


def _stable_hash(text: str) -> int:
    """``propdev.registry``'s shard hash (blake2b, 8 bytes): the same in every process."""
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")


def chain_of(record: AuditRecord, chains: int = CHAINS) -> int:
    """The chain ``record`` goes to: its door's shard, else its subject's, else its actor's.

    A door's entries thus share a chain with every other door of the same shard, and the
    chain of a door is the shard whose owner runs its device actor: appends on different
    shards, usually on different nodes, never wait for each other.
    """
    key = record.access_point_id or record.subject or record.actor
    return _stable_hash(key) % chains


HASH_FORMAT = 4  # what ``append`` writes (3 for clear personal fields); ``verify``: any


def _body_v1(record: AuditRecord, _digest: str | None = None) -> bytes:
    fields_v1 = {name: getattr(record, name) for name in _V2_FIELDS}
    return json.dumps(fields_v1, sort_keys=True, separators=(",", ":")).encode()


def _body_v2(r: AuditRecord, _digest: str | None = None) -> bytes:
    body = (
        2,
        float(r.at),
        r.actor,
        r.action,
        r.access_point_id,
        r.decision,
        r.reason,
        r.command_id,
    )
    packed: bytes = msgpack.packb(body)
    return packed


def _body_v3(r: AuditRecord, digest: str | None, hash_format: int = 3) -> bytes:
    body = (
        hash_format,
        float(r.at),
        r.actor,
        r.action,
        r.access_point_id,
        r.decision,
        r.reason,
        r.command_id,
        int(r.chain),
        r.subject,
        digest,
    )
    packed: bytes = msgpack.packb(body)
    return packed


def _body_v4(r: AuditRecord, digest: str | None) -> bytes:
    return _body_v3(r, digest, 4)


_BODIES: dict[int, Callable[[AuditRecord, str | None], bytes]] = {
    1: _body_v1,
    2: _body_v2,
    3: _body_v3,
    4: _body_v4,
}


def _format_of(record: AuditRecord) -> int:
    """The format ``append`` writes ``record`` in: 4, or 3 for clear personal fields."""
    return 3 if record.personal and record.sealed is None else HASH_FORMAT


def _stored_personal(record: AuditRecord) -> str | None:
    """What the ``personal`` column holds for ``record``: its sealed text, else its JSON."""
    if record.sealed is not None:
        return record.sealed
    return personal_text(record.personal)


def entry_hash(
    prev_hash: str,
    record: AuditRecord,
    hash_format: int | None = None,
    *,
    digest: str | None = None,
) -> str:
    """The hash of ``record`` after ``prev_hash`` in format ``hash_format`` (by default the
    one ``append`` writes ``record`` in; ``KeyError`` if unknown). Formats 3 and 4 cover the
    personal fields through ``digest``, by default the digest of what ``personal`` would
    store (the sealed text in format 4); a verifier passes the stored digest."""
    if digest is None and (record.personal or record.sealed):
        digest = personal_digest(_stored_personal(record))
    if hash_format is None:
        hash_format = _format_of(record)
    return link_hash(prev_hash, _BODIES[hash_format](record, digest))


_LOCK = "SELECT pg_advisory_xact_lock(:k, :chain)"
_LAST = "SELECT hash FROM audit WHERE chain = :chain ORDER BY id DESC LIMIT 1"
_INSERT = (
    "INSERT INTO audit (at, actor, action, access_point_id, decision, reason, command_id, "
    "chain, subject, personal, personal_digest, prev_hash, hash, hash_format) VALUES "
    "(:at, :actor, :action, :ap, :decision, :reason, :cmd, :chain, :subject, :personal, "
    ":digest, :prev, :hash, :fmt) RETURNING id"
)
# PostgreSQL: the last hash read and the entry inserted in one statement (one round trip
# fewer per append), the entry's hash computed by the server from the body made here:
# ``sha256(prev_hash || body)`` in hex, as ``link_hash``. After the chain's lock, as the two
# statements were: the statement's snapshot is taken after the lock is held.
_APPEND_PG = (
    "WITH last AS (SELECT coalesce((SELECT hash FROM audit WHERE chain = :chain "
    "ORDER BY id DESC LIMIT 1), :genesis) AS hash) "
    "INSERT INTO audit (at, actor, action, access_point_id, decision, reason, command_id, "
    "chain, subject, personal, personal_digest, prev_hash, hash, hash_format) VALUES "
    "(:at, :actor, :action, :ap, :decision, :reason, :cmd, :chain, :subject, :personal, "
    ":digest, (SELECT hash FROM last), "
    "encode(sha256(convert_to((SELECT hash FROM last), 'UTF8') || :body), 'hex'), :fmt) "
    "RETURNING id, prev_hash, hash"
)
# Every column: a database not yet migrated to schema 15 has no hash_format (all format 1).
_VERIFY_PAGE = "SELECT * FROM audit WHERE id > :after ORDER BY id LIMIT :limit"


def _entry_params(record: AuditRecord) -> tuple[dict[str, Any], str | None, int]:
    """The columns both appends write but the links, the personal digest and the format."""
    text = _stored_personal(record)
    digest = personal_digest(text)
    params = {
        "at": record.at,
        "actor": record.actor,
        "action": record.action,
        "ap": record.access_point_id,
        "decision": record.decision,
        "reason": record.reason,
        "cmd": record.command_id,
        "chain": record.chain,
        "subject": record.subject,
        "personal": text,
        "digest": digest,
    }
    return params, digest, _format_of(record)


def _insert_params(record: AuditRecord, prev: str) -> dict[str, Any]:
    """``_INSERT``'s parameters: the entry linked after ``prev``, its hash made here."""
    params, digest, hash_format = _entry_params(record)
    hashed = entry_hash(prev, record, hash_format, digest=digest)
    return {**params, "prev": prev, "hash": hashed, "fmt": hash_format}


def _pg_params(record: AuditRecord) -> dict[str, Any]:
    """``_APPEND_PG``'s parameters: the entry without its links, and the body to hash."""
    params, digest, hash_format = _entry_params(record)
    body = _BODIES[hash_format](record, digest)
    return {**params, "genesis": GENESIS, "body": body, "fmt": hash_format}


def _stored(record: AuditRecord, entry_id: int, params: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "id": entry_id,
        **_as_dict(record),
        "personal": None if record.personal is None else dict(record.personal),
        "prev_hash": params["prev"] if "prev" in params else params["prev_hash"],
        "hash": params["hash"],
    }


def publish(entry: Mapping[str, Any]) -> None:
    """Log a committed entry on the audit stream (``STREAM_FIELDS`` of it)."""
    _stream.info(STREAM_EVENT, **{name: entry.get(name) for name in STREAM_FIELDS})


def _published(entry: dict[str, Any]) -> dict[str, Any]:
    """``entry``, published when its transaction commits (as it is now: the caller may
    change the dict it gets)."""
    fields_now = {name: entry[name] for name in STREAM_FIELDS}
    after_commit(lambda: publish(fields_now))
    return entry


def _on_its_chain(record: AuditRecord) -> AuditRecord:
    chain = chain_of(record)
    return record if record.chain == chain else replace(record, chain=chain)


async def append(conn: AsyncConnection, dialect: str, record: AuditRecord) -> dict[str, Any]:
    """Append ``record`` to its chain (``chain_of``, whatever ``record.chain`` says) inside
    the caller's transaction (``Database.transaction``); return the stored entry. It is
    published once that transaction commits."""
    record = _on_its_chain(record)
    if dialect == "postgresql":
        await run(conn, _LOCK, k=_LOCK_KEY, chain=record.chain)
        linked = (await run(conn, _APPEND_PG, **_pg_params(record)))[0]
        return _published(_stored(record, linked["id"], linked))
    last = await run(conn, _LAST, chain=record.chain)
    prev = last[0]["hash"] if last else GENESIS
    params = _insert_params(record, prev)
    rows = await run(conn, _INSERT, **params)
    return _published(_stored(record, rows[0]["id"], params))


def sync_append(conn: UnitConnection, record: AuditRecord) -> dict[str, Any]:
    """``append`` inside a ``Database.unit``.

    The previous hash is read in the same transaction, after the chain's lock (the writer
    thread on SQLite, the chain's advisory lock on PostgreSQL), never cached: on SQLite that
    read costs microseconds inside the unit's one hop, on PostgreSQL it is part of the
    insert (``_APPEND_PG``, one round trip), and it stays right after a rolled-back unit or a
    write by another process. On PostgreSQL the lock is taken by
    ``unit_lock``: a unit that is not the first of its group-committed batch does not wait
    for a chain another transaction holds (it is run again first in the next batch), so the
    writers' batches never deadlock on two chains nor hold theirs while waiting.
    """
    record = _on_its_chain(record)
    unit_lock(conn, _LOCK_KEY, record.chain)
    if conn.dialect == "postgresql":
        linked = conn.run(_APPEND_PG, **_pg_params(record))[0]
        return _published(_stored(record, linked["id"], linked))
    last = conn.run(_LAST, chain=record.chain)
    prev = last[0]["hash"] if last else GENESIS
    params = _insert_params(record, prev)
    rows = conn.run(_INSERT, **params)
    return _published(_stored(record, rows[0]["id"], params))


def entry_body(row: Row) -> bytes | None:
    """The bytes a stored entry's hash covers after its ``prev_hash`` (``None`` if its format
    is unknown or its personal fields no longer match the digest the chain covers)."""
    hash_format = int(row.get("hash_format", 1))
    if hash_format not in _BODIES:
        return None
    values = {name: row[name] for name in _V2_FIELDS}
    digest = None
    if hash_format >= 3:
        values["chain"] = int(row["chain"])
        values["subject"] = row["subject"]
        digest = row["personal_digest"]
        text = row["personal"]
        if text is not None and personal_digest(text) != digest:
            return None
    return _BODIES[hash_format](AuditRecord(**values), digest)


PersonalOpener = Callable[[Row], Mapping[str, Any] | None]
"""Opens an entry's sealed ``personal`` (format 4) from its row -- ``personal``,
``subject`` and ``person_key`` (``SUBJECT_KEY``) -- or answers ``None`` (key destroyed):
``propdev.security.open_audit_personal``."""
SUBJECT_KEY = (
    "(SELECT wrapped FROM person_keys WHERE person_keys.user_id = audit.subject) AS person_key"
)
"""A select-list item: the wrapped person key of the entry's subject (for ``PersonalOpener``)."""


def personal_of(row: Row, open_personal: PersonalOpener | None) -> Mapping[str, Any] | None:
    """The personal fields of a stored entry: format 3's JSON read, format 4's opened by
    ``open_personal`` (``None`` without it), ``None`` when blanked."""
    text = row["personal"]
    if text is None:
        return None
    if int(row.get("hash_format", 1)) >= 4:
        return None if open_personal is None else open_personal(row)
    loaded: Mapping[str, Any] = json.loads(text)
    return loaded


def link_hash(prev_hash: str, body: bytes) -> str:
    """An entry's hash from its predecessor's and its body (``entry_hash`` for stored rows)."""
    return hashlib.sha256(prev_hash.encode() + body).hexdigest()


def _intact(prev: str, row: Row) -> bool:
    """Whether a stored entry hashes to its ``hash`` after ``prev`` (its personal fields, if
    still there, matching the digest the chain covers)."""
    body = entry_body(row)
    return body is not None and link_hash(prev, body) == row["hash"]


@dataclass(slots=True)
class ChainHead:
    """Where a chain stands: its entry count, last entry's id and hash."""

    chain: int
    count: int
    last_id: int
    hash: str


class ChainWalk:
    """Follows every chain at once through the entries in id order (a chain's order).

    ``step`` checks one entry against the head of its own chain and returns why it breaks
    the chain (``None`` when it holds): each chain is verified on its own, in one pass.
    """

    __slots__ = ("checked", "heads")

    def __init__(self) -> None:
        self.heads: dict[int, ChainHead] = {}
        self.checked = 0

    def step(self, row: Row) -> str | None:
        chain = int(row.get("chain", 0))
        if int(row.get("hash_format", 1)) < 3 and chain != 0:
            return "an entry written before chains is not on chain 0"
        head = self.heads.get(chain)
        prev = head.hash if head is not None else GENESIS
        if row["prev_hash"] != prev:
            return "does not link to its chain's previous entry (one deleted, moved or edited)"
        if not _intact(prev, row):
            return "its content does not match its hash (edited)"
        entry_id = int(row["id"])
        if head is None:
            self.heads[chain] = ChainHead(chain, 1, entry_id, row["hash"])
        else:
            head.count += 1
            head.last_id = entry_id
            head.hash = row["hash"]
        self.checked += 1
        return None


async def entries(db: Database, *, page: int = 1000) -> AsyncIterator[Row]:
    """Every stored entry, every column, in id order (pages of ``page``)."""
    after = 0
    while True:
        rows = await db.fetch_all(_VERIFY_PAGE, after=after, limit=page)
        if not rows:
            return
        for row in rows:
            yield row
        after = int(rows[-1]["id"])


class AuditLog:
    """Reading and verifying the chain."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def append(self, record: AuditRecord) -> dict[str, Any]:
        async with self.db.transaction() as conn:
            return await append(conn, self.db.dialect, record)

    async def page(
        self,
        *,
        access_point_id: str | None = None,
        after: int = 0,
        limit: int = 100,
        action: str | None = None,
        actor: str | None = None,
        within: tuple[str, Mapping[str, Any]] | None = None,
        open_personal: PersonalOpener | None = None,
    ) -> list[Row]:
        """Entries after ``after`` in append order, at most ``limit``: only those about
        ``access_point_id``, whose action starts with ``action`` (``auth.`` matches
        ``auth.login``) and whose actor is ``actor``, for each filter given. ``personal`` is
        the mapping stored (``None`` when there is none, or no longer), a sealed one (format
        4) opened by ``open_personal`` (``None`` without it). ``within``: one more SQL
        condition and its parameters (a staff scope's, ``propdev.staff.audit_within``)."""
        where = ["id > :after"]
        if access_point_id:
            where.append("access_point_id = :ap")
        if action:  # a prefix: substr, not LIKE, so "_" and "%" in it are plain characters
            where.append("substr(action, 1, :action_len) = :action")
        if actor:
            where.append("actor = :actor")
        extra: Mapping[str, Any] = {}
        if within is not None:
            where.append(f"({within[0]})")
            extra = within[1]
        rows = await self.db.fetch_all(
            "SELECT id, at, actor, action, access_point_id, decision, reason, command_id, "
            f"subject, personal, prev_hash, hash, hash_format, {SUBJECT_KEY} FROM audit "
            f"WHERE {' AND '.join(where)} ORDER BY id LIMIT :limit",
            after=after,
            ap=access_point_id,
            action=action,
            action_len=len(action or ""),
            actor=actor,
            limit=limit,
            **extra,
        )
        return [
            {
                **{k: v for k, v in row.items() if k not in ("hash_format", "person_key")},
                "personal": personal_of(row, open_personal),
            }
            for row in rows
        ]

    async def verify(self) -> tuple[bool, int, int | None]:
        """Check every chain: (ok, entries checked, id of the first bad entry).

        Only the links: a chain whose last entries were deleted still passes here; the
        signed checkpoints (``propdev.integrity.verify_store``) catch that.
        """
        walk = ChainWalk()
        async for row in entries(self.db):
            if walk.step(row) is not None:
                return False, walk.checked, int(row["id"])
        return True, walk.checked, None
