from __future__ import annotations

import asyncio
import hashlib
import json
import struct
from dataclasses import replace

from propdev.storage import Database
from propdev.storage.audit import (
    GENESIS,
    HASH_FORMAT,
    AuditLog,
    AuditRecord,
    chain_of,
    entry_hash,
)

CHAIN_0_DOOR = "ap-6"  # a door whose shard, and so chain, is 0


def record(n: int, decision: str = "granted") -> AuditRecord:
    return AuditRecord(
        at=1000.0 + n,
        actor=f"user:u{n}",
        action="open",
        access_point_id="ap-1",
        decision=decision,
        reason="" if decision == "granted" else "no_right",
        command_id=f"c{n}",
    )


async def test_entries_chain_each_hash_to_the_previous(db: Database) -> None:
    log = AuditLog(db)
    first = await log.append(record(1))
    second = await log.append(record(2, "denied"))
    assert first["prev_hash"] == GENESIS
    assert second["prev_hash"] == first["hash"]
    assert await log.verify() == (True, 2, None)


async def test_editing_one_entry_breaks_the_chain_at_that_entry(db: Database) -> None:
    log = AuditLog(db)
    entries = [await log.append(record(n)) for n in range(5)]
    await db.execute("UPDATE audit SET decision = 'denied' WHERE id = :id", id=entries[2]["id"])
    ok, checked, bad = await log.verify()
    assert (ok, checked, bad) == (False, 2, entries[2]["id"])


async def test_deleting_an_entry_breaks_the_chain(db: Database) -> None:
    log = AuditLog(db)
    entries = [await log.append(record(n)) for n in range(4)]
    await db.execute("DELETE FROM audit WHERE id = :id", id=entries[1]["id"])
    ok, _, bad = await log.verify()
    assert not ok and bad == entries[2]["id"]


async def test_concurrent_appends_keep_one_chain(db: Database) -> None:
    log = AuditLog(db)
    await asyncio.gather(*(log.append(record(n)) for n in range(20)))
    assert await log.verify() == (True, 20, None)


async def test_pages_filter_by_access_point_in_append_order(db: Database) -> None:
    log = AuditLog(db)
    for n in range(3):
        await log.append(record(n))
    await log.append(
        AuditRecord(
            at=5.0, actor="user:x", action="open", access_point_id="ap-2", decision="granted"
        )
    )
    page = await log.page(access_point_id="ap-1", limit=2)
    assert [e["command_id"] for e in page] == ["c0", "c1"]
    rest = await log.page(access_point_id="ap-1", after=page[-1]["id"])
    assert [e["command_id"] for e in rest] == ["c2"]


# Hash formats: entries written before schema version 15 (format 1, sorted JSON) keep
# verifying next to the current ones (format 2, msgpack).

OLD_INSERT = (
    "INSERT INTO audit (at, actor, action, access_point_id, decision, reason, command_id, "
    "prev_hash, hash) VALUES (:at, :actor, :action, :ap, :decision, :reason, :cmd, :prev, :hash)"
)


def json_hash(prev: str, r: AuditRecord) -> str:
    """Format 1 as the code before schema version 15 computed it."""
    body = json.dumps(
        {
            "at": r.at,
            "actor": r.actor,
            "action": r.action,
            "access_point_id": r.access_point_id,
            "decision": r.decision,
            "reason": r.reason,
            "command_id": r.command_id,
        },
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(prev.encode() + body.encode()).hexdigest()


def msgpack_str(value: str | None) -> bytes:
    if value is None:
        return b"\xc0"
    data = value.encode()
    assert len(data) < 256
    return (bytes([0xA0 | len(data)]) if len(data) < 32 else bytes([0xD9, len(data)])) + data


def msgpack_hash(prev: str, r: AuditRecord) -> str:
    """Format 2 written out byte by byte: array of 8, the format, float 64, strings or nil."""
    body = b"\x98\x02\xcb" + struct.pack(">d", r.at)
    for value in (r.actor, r.action, r.access_point_id, r.decision, r.reason, r.command_id):
        body += msgpack_str(value)
    return hashlib.sha256(prev.encode() + body).hexdigest()


async def insert_old_format(db: Database, records: list[AuditRecord]) -> list[int]:
    """Entries as code before schema version 15 wrote them (no ``hash_format`` column)."""
    last = await db.fetch_one("SELECT hash FROM audit ORDER BY id DESC LIMIT 1")
    prev = last["hash"] if last else GENESIS
    for r in records:
        digest = json_hash(prev, r)
        await db.execute(
            OLD_INSERT,
            at=r.at,
            actor=r.actor,
            action=r.action,
            ap=r.access_point_id,
            decision=r.decision,
            reason=r.reason,
            cmd=r.command_id,
            prev=prev,
            hash=digest,
        )
        prev = digest
    rows = await db.fetch_all("SELECT id FROM audit ORDER BY id")
    return [int(row["id"]) for row in rows[-len(records) :]]


def msgpack_v3_hash(prev: str, r: AuditRecord, fmt: int = 3) -> str:
    """Format 3 (or 4) written out byte by byte: array of 11, the format, float 64, strings
    or nil, the chain as a positive fixint, the subject, the SHA-256 in hex of the personal
    fields as stored (format 3: their canonical JSON; format 4: their sealed text)."""
    body = b"\x9b" + bytes([fmt]) + b"\xcb" + struct.pack(">d", r.at)
    for value in (r.actor, r.action, r.access_point_id, r.decision, r.reason, r.command_id):
        body += msgpack_str(value)
    assert 0 <= r.chain < 128
    body += bytes([r.chain]) + msgpack_str(r.subject)
    if fmt == 4 and r.sealed is not None:
        body += msgpack_str(hashlib.sha256(r.sealed.encode()).hexdigest())
    elif r.personal:
        canonical = json.dumps(dict(r.personal), sort_keys=True, separators=(",", ":"))
        body += msgpack_str(hashlib.sha256(canonical.encode()).hexdigest())
    else:
        body += msgpack_str(None)
    return hashlib.sha256(prev.encode() + body).hexdigest()


def test_the_formats_are_the_documented_arrays() -> None:
    r = AuditRecord(1_700_000_000.25, "user:u1", "open", "ap-1", "granted", "", None)
    assert HASH_FORMAT == 4
    assert entry_hash(GENESIS, r) == msgpack_v3_hash(GENESIS, r, 4)
    assert entry_hash(GENESIS, r, 3) == msgpack_v3_hash(GENESIS, r)
    assert entry_hash(GENESIS, r, 2) == msgpack_hash(GENESIS, r)
    assert entry_hash(GENESIS, r, 1) == json_hash(GENESIS, r)
    assert len({entry_hash(GENESIS, r, f) for f in (1, 2, 3, 4)}) == 4
    personal = AuditRecord(
        1_700_000_000.25,
        "anonymous",
        "auth.login",
        None,
        "denied",
        "bad_password",
        chain=5,
        subject="u1",
        personal={"username": "anna", "address": "10.0.0.7"},
    )
    # Clear personal fields (no vault at hand) are format 3; sealed ones format 4, whose
    # digest is of the sealed text.
    assert entry_hash(GENESIS, personal) == msgpack_v3_hash(GENESIS, personal)
    sealed = replace(personal, sealed="p1:c2VhbGVk")
    assert entry_hash(GENESIS, sealed) == msgpack_v3_hash(GENESIS, sealed, 4)
    assert entry_hash(GENESIS, replace(sealed, sealed="p1:b3RoZXI")) != entry_hash(GENESIS, sealed)
    # The chain, the subject and the personal fields are all covered.
    for changed in (
        replace(personal, chain=6),
        replace(personal, subject="u2"),
        replace(personal, personal={"username": "anne", "address": "10.0.0.7"}),
        replace(personal, personal=None),
    ):
        assert entry_hash(GENESIS, changed) != entry_hash(GENESIS, personal)


async def test_personal_fields_can_be_blanked_and_the_chain_still_verifies(db: Database) -> None:
    log = AuditLog(db)
    for n in range(3):
        await log.append(
            replace(record(n), subject=f"u{n}", personal={"username": f"name{n}", "address": "::1"})
        )
    entries = await db.fetch_all("SELECT id, personal, personal_digest FROM audit ORDER BY id")
    assert json.loads(entries[1]["personal"]) == {"username": "name1", "address": "::1"}
    assert await log.verify() == (True, 3, None)
    # Erased (or past retention): the personal fields go, their digest stays.
    await db.execute("UPDATE audit SET personal = NULL WHERE id = :id", id=entries[1]["id"])
    assert await log.verify() == (True, 3, None)
    # Edited personal fields no longer match their digest; a changed digest breaks the chain.
    await db.execute(
        "UPDATE audit SET personal = :p WHERE id = :id",
        p='{"address":"::1","username":"mallory"}',
        id=entries[2]["id"],
    )
    assert await log.verify() == (False, 2, entries[2]["id"])
    await db.execute(
        "UPDATE audit SET personal = NULL, personal_digest = :d WHERE id = :id",
        d="0" * 64,
        id=entries[2]["id"],
    )
    assert await log.verify() == (False, 2, entries[2]["id"])
    await db.execute("UPDATE audit SET subject = 'u9' WHERE id = :id", id=entries[0]["id"])
    assert await log.verify() == (False, 0, entries[0]["id"])


def test_an_integer_time_hashes_like_the_float_the_database_gives_back() -> None:
    as_int = AuditRecord(5, "user:x", "open", None, "denied", "no_right")  # type: ignore[arg-type]
    as_float = AuditRecord(5.0, "user:x", "open", None, "denied", "no_right")
    assert entry_hash(GENESIS, as_int) == entry_hash(GENESIS, as_float)


async def test_entries_in_the_old_format_still_verify(db: Database) -> None:
    ids = await insert_old_format(db, [record(n) for n in range(3)])
    rows = await db.fetch_all("SELECT hash_format FROM audit ORDER BY id")
    assert [row["hash_format"] for row in rows] == [1, 1, 1]
    assert await AuditLog(db).verify() == (True, 3, None)
    await db.execute("UPDATE audit SET actor = 'user:mallory' WHERE id = :id", id=ids[1])
    assert await AuditLog(db).verify() == (False, 1, ids[1])


async def test_new_entries_are_written_in_the_current_format(db: Database) -> None:
    log = AuditLog(db)
    entries = [await log.append(record(n)) for n in range(3)]
    rows = await db.fetch_all("SELECT hash_format, hash FROM audit ORDER BY id")
    assert [row["hash_format"] for row in rows] == [HASH_FORMAT] * 3
    assert rows[0]["hash"] == msgpack_v3_hash(
        GENESIS, replace(record(0), chain=chain_of(record(0))), 4
    )
    assert await log.verify() == (True, 3, None)
    await db.execute("UPDATE audit SET reason = 'edited' WHERE id = :id", id=entries[2]["id"])
    assert await log.verify() == (False, 2, entries[2]["id"])


async def test_a_chain_mixing_both_formats_verifies_and_breaks_where_edited(
    db: Database,
) -> None:
    log = AuditLog(db)
    old = await insert_old_format(db, [record(n) for n in range(2)])
    # The old global chain is chain 0's beginning: chain 0's new entries follow it.
    new = [await log.append(replace(record(n), access_point_id=CHAIN_0_DOOR)) for n in range(2, 4)]
    assert [e["chain"] for e in new] == [0, 0]
    last_old = await db.fetch_one("SELECT hash FROM audit WHERE id = :id", id=old[-1])
    assert last_old is not None and new[0]["prev_hash"] == last_old["hash"]
    assert await log.verify() == (True, 4, None)
    await db.execute("UPDATE audit SET decision = 'denied' WHERE id = :id", id=old[0])
    assert await log.verify() == (False, 0, old[0])


async def test_relabelling_an_entrys_format_breaks_the_chain(db: Database) -> None:
    log = AuditLog(db)
    old = await insert_old_format(db, [record(0)])
    new = await log.append(record(1))
    await db.execute("UPDATE audit SET hash_format = 2 WHERE id = :id", id=old[0])
    assert await log.verify() == (False, 0, old[0])
    await db.execute("UPDATE audit SET hash_format = 1 WHERE id = :id", id=old[0])
    await db.execute("UPDATE audit SET hash_format = 1 WHERE id = :id", id=new["id"])
    assert await log.verify() == (False, 1, new["id"])
    await db.execute("UPDATE audit SET hash_format = 99 WHERE id = :id", id=new["id"])
    assert await log.verify() == (False, 1, new["id"])


async def test_a_chain_not_yet_migrated_to_recorded_formats_verifies(db: Database) -> None:
    await db.execute("ALTER TABLE audit DROP COLUMN hash_format")  # as before schema 15
    ids = await insert_old_format(db, [record(n) for n in range(2)])
    assert await AuditLog(db).verify() == (True, 2, None)
    await db.execute("UPDATE audit SET at = 1.0 WHERE id = :id", id=ids[1])
    assert await AuditLog(db).verify() == (False, 1, ids[1])
