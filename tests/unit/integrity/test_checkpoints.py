"""Signed checkpoints and the offline verification: every tampering named, on both stores."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from propdev.integrity import (
    PUBLIC_FILE,
    Checkpointer,
    CheckpointKeyError,
    InconsistentChainsError,
    NotCheckpointedError,
    VerifierKey,
    prove_inclusion,
    read_verifier_keys,
    rotate_checkpoint_key,
    signer_for,
    verify_inclusion,
    verify_store,
)
from propdev.integrity.checkpoint import CheckpointStore
from propdev.integrity.keys import CheckpointSigner, open_note
from propdev.registry import shard_of
from propdev.storage import Database, migrate, run
from propdev.storage.audit import AuditLog, AuditRecord
from tests.support.postgres import fresh_database


def doors(n: int) -> list[str]:
    """``n`` doors on ``n`` different chains."""
    found: dict[int, str] = {}
    for i in range(1000):
        found.setdefault(shard_of(f"ap-{i}"), f"ap-{i}")
        if len(found) == n:
            break
    return list(found.values())


A, B, C = doors(3)


def entry(door: str, n: int) -> AuditRecord:
    return AuditRecord(1000.0 + n, f"user:u{n}", "open", door, "granted", command_id=f"c{n}")


class Clock:
    def __init__(self) -> None:
        self.now = 1_765_000_000.0

    def __call__(self) -> float:
        return self.now


def checkpointer(db: Database, data_dir: Path, clock: Clock) -> Checkpointer:
    return Checkpointer(db, lambda: signer_for(data_dir), interval=60, clock=clock, node_id="n1")


async def fill(db: Database) -> dict[str, list[dict[str, object]]]:
    """Three entries on each of three chains, interleaved."""
    log = AuditLog(db)
    written: dict[str, list[dict[str, object]]] = {A: [], B: [], C: []}
    for n in range(3):
        for door in (A, B, C):
            written[door].append(await log.append(entry(door, n)))
    return written


def keys(data_dir: Path) -> list[VerifierKey]:
    return read_verifier_keys(data_dir / PUBLIC_FILE)


async def test_an_untouched_store_with_checkpoints_verifies(db: Database, tmp_path: Path) -> None:
    clock = Clock()
    await fill(db)
    first = await checkpointer(db, tmp_path, clock).checkpoint()
    assert first is not None and (first.seq, first.entries, len(first.heads)) == (1, 9, 3)
    assert first.note.startswith("propdev/audit\n3\n")
    await AuditLog(db).append(entry(A, 9))
    clock.now += 60
    second = await checkpointer(db, tmp_path, clock).checkpoint()
    assert second is not None and (second.seq, second.entries) == (2, 10)
    report = await verify_store(db, keys(tmp_path))
    assert report.as_json() == {
        "ok": True,
        "checked": 10,
        "chains": 3,
        "checkpoints": 2,
        "first_bad_id": None,
        "chain": None,
        "checkpoint": None,
        "problem": "",
    }


async def test_no_checkpoint_is_written_when_nothing_moved_or_too_soon(
    db: Database, tmp_path: Path
) -> None:
    clock = Clock()
    writer = checkpointer(db, tmp_path, clock)
    assert await writer.checkpoint() is None  # an empty log
    await fill(db)
    assert (await writer.checkpoint()) is not None
    await AuditLog(db).append(entry(B, 7))
    clock.now += 10
    assert await writer.checkpoint() is None  # younger than half the interval
    written = await writer.checkpoint(force=True)  # at a clean shutdown
    assert written is not None and written.seq == 2
    clock.now += 60
    assert await writer.checkpoint() is None  # nothing moved
    await AuditLog(db).append(entry(C, 8))
    written = await writer.checkpoint()
    assert written is not None and written.seq == 3


@pytest.mark.parametrize("tamper", ["edit", "delete", "swap"])
async def test_verify_names_the_first_entry_edited_deleted_or_swapped_in_its_chain(
    db: Database, tmp_path: Path, tamper: str
) -> None:
    written = await fill(db)
    await checkpointer(db, tmp_path, Clock()).checkpoint()
    middle, last = written[B][1]["id"], written[B][2]["id"]
    if tamper == "edit":
        await db.execute("UPDATE audit SET decision = 'denied' WHERE id = :id", id=middle)
        bad = middle
    elif tamper == "delete":
        await db.execute("DELETE FROM audit WHERE id = :id", id=middle)
        bad = last
    else:  # two entries of a chain swap places: their ids exchanged
        await db.execute("UPDATE audit SET id = -1 WHERE id = :id", id=middle)
        await db.execute("UPDATE audit SET id = :m WHERE id = :l", m=middle, l=last)
        await db.execute("UPDATE audit SET id = :l WHERE id = -1", l=last)
        bad = middle
    report = await verify_store(db, keys(tmp_path))
    assert (report.ok, report.first_bad_id, report.chain) == (False, bad, shard_of(B))
    assert f"entry {bad}" in report.problem
    assert (await AuditLog(db).verify())[::2] == (False, bad)


async def test_a_truncated_chain_passes_the_links_and_is_caught_by_the_checkpoint(
    db: Database, tmp_path: Path
) -> None:
    written = await fill(db)
    await checkpointer(db, tmp_path, Clock()).checkpoint()
    head = written[C][2]["id"]
    await db.execute("DELETE FROM audit WHERE id = :id", id=head)
    assert await AuditLog(db).verify() == (True, 8, None)  # the links alone cannot tell
    report = await verify_store(db, keys(tmp_path))
    assert (report.ok, report.first_bad_id, report.chain, report.checkpoint) == (
        False,
        head,
        shard_of(C),
        1,
    )
    assert "truncated" in report.problem
    # The signer refuses to sign over it.
    clock = Clock()
    clock.now += 120
    with pytest.raises(InconsistentChainsError):
        await checkpointer(db, tmp_path, clock).checkpoint()


async def test_a_chain_rewritten_under_a_checkpoint_is_caught(db: Database, tmp_path: Path) -> None:
    written = await fill(db)
    await checkpointer(db, tmp_path, Clock()).checkpoint()
    head = written[A][2]["id"]
    await db.execute("DELETE FROM audit WHERE id = :id", id=head)
    replacement = await AuditLog(db).append(replace(entry(A, 2), decision="denied"))
    assert await AuditLog(db).verify() == (True, 9, None)  # well linked again
    report = await verify_store(db, keys(tmp_path))
    assert (report.ok, report.first_bad_id, report.checkpoint) == (False, replacement["id"], 1)
    assert "rewritten" in report.problem


@pytest.mark.parametrize("field", ["note", "heads", "seq", "key"])
async def test_a_tampered_or_foreign_checkpoint_is_named(
    db: Database, tmp_path: Path, field: str
) -> None:
    await fill(db)
    clock = Clock()
    await checkpointer(db, tmp_path, clock).checkpoint()
    await AuditLog(db).append(entry(A, 5))
    clock.now += 60
    await checkpointer(db, tmp_path, clock).checkpoint()
    trusted = keys(tmp_path)
    if field == "note":  # another entry count under the same signature
        await db.execute(
            "UPDATE audit_checkpoints SET note = replace(note, 'entries 9', 'entries 8')"
        )
    elif field == "heads":
        (row,) = await db.fetch_all("SELECT heads FROM audit_checkpoints WHERE seq = 1")
        heads = json.loads(row["heads"])
        heads[0][1] -= 1
        await db.execute(
            "UPDATE audit_checkpoints SET heads = :h WHERE seq = 1", h=json.dumps(heads)
        )
    elif field == "seq":  # a checkpoint gone from the middle
        await db.execute("DELETE FROM audit_checkpoints WHERE seq = 1")
    else:  # verified with a key that never signed here
        trusted = [CheckpointSigner(Ed25519PrivateKey.generate()).verifier]
    report = await verify_store(db, trusted)
    assert (report.ok, report.checkpoint) == (False, 2 if field == "seq" else 1)
    assert report.problem.startswith(f"checkpoint {report.checkpoint}")


async def test_checkpoints_signed_before_a_key_rotation_still_verify(
    db: Database, tmp_path: Path
) -> None:
    await fill(db)
    clock = Clock()
    before = await checkpointer(db, tmp_path, clock).checkpoint()
    old_key = (tmp_path / "audit-checkpoint-key.pem").read_bytes()
    old, new = rotate_checkpoint_key(tmp_path)
    assert old is not None and before is not None and old.hex_id == before.key_id != new.hex_id
    assert (tmp_path / "audit-checkpoint-key.pem").read_bytes() != old_key  # the old one gone
    await AuditLog(db).append(entry(B, 8))
    clock.now += 60
    after = await checkpointer(db, tmp_path, clock).checkpoint()
    assert after is not None and after.key_id == new.hex_id
    assert {k.hex_id for k in keys(tmp_path)} == {old.hex_id, new.hex_id}
    assert (await verify_store(db, keys(tmp_path))).ok
    only_new = await verify_store(db, [new])
    assert (only_new.ok, only_new.checkpoint) == (False, 1)


async def test_an_entry_is_proved_to_be_under_a_checkpoint(db: Database, tmp_path: Path) -> None:
    written = await fill(db)
    cp = await checkpointer(db, tmp_path, Clock()).checkpoint()
    assert cp is not None
    target = written[B][0]
    proof = await prove_inclusion(db, int(str(target["id"])))
    assert (proof.position, len(proof.links), proof.tree_size) == (1, 2, 3)
    assert verify_inclusion(proof, str(target["hash"]), keys(tmp_path))
    # Another entry's hash, a changed link, or a stranger's key: no proof.
    assert not verify_inclusion(proof, str(written[B][1]["hash"]), keys(tmp_path))
    forged = replace(proof, links=(proof.links[0][:-2] + "00", proof.links[1]))
    assert not verify_inclusion(forged, str(target["hash"]), keys(tmp_path))
    stranger = CheckpointSigner(Ed25519PrivateKey.generate()).verifier
    assert not verify_inclusion(proof, str(target["hash"]), [stranger])
    later = await AuditLog(db).append(entry(B, 9))
    with pytest.raises(NotCheckpointedError):
        await prove_inclusion(db, int(str(later["id"])))


async def test_the_signed_note_is_a_c2sp_note_naming_its_key(db: Database, tmp_path: Path) -> None:
    await fill(db)
    cp = await checkpointer(db, tmp_path, Clock()).checkpoint()
    assert cp is not None
    text, key = open_note(cp.note, keys(tmp_path))
    assert text.splitlines() == [
        "propdev/audit",
        "3",
        cp.root,
        "seq 1",
        "time 1765000000000",
        "entries 9",
    ]
    assert cp.note.splitlines()[-1].startswith("\u2014 propdev/audit ")
    assert key.text().startswith(f"propdev/audit+{cp.key_id}+")
    assert (await CheckpointStore(db).latest()) == cp


async def test_a_stopping_node_writes_a_last_checkpoint(db: Database, tmp_path: Path) -> None:
    await fill(db)
    writer = checkpointer(db, tmp_path, Clock())
    writer.start()
    assert await CheckpointStore(db).latest() is None  # the first one comes after the interval
    await writer.stop()
    latest = await CheckpointStore(db).latest()
    assert latest is not None and (latest.seq, latest.entries) == (1, 9)


async def test_on_postgresql_one_node_at_a_time_writes_a_checkpoint(tmp_path: Path) -> None:
    with fresh_database() as url:
        db = Database(url)
        try:
            await migrate(db)
            await fill(db)
            async with db.transaction() as conn:  # another node, writing one
                await run(conn, "SELECT pg_advisory_xact_lock(74203)")
                assert await checkpointer(db, tmp_path, Clock()).checkpoint() is None
            assert await checkpointer(db, tmp_path, Clock()).checkpoint() is not None
            # Two nodes at the same tick: one writes, the other finds it done or locked.
            await AuditLog(db).append(entry(A, 9))
            clock = Clock()
            clock.now += 60
            nodes = [checkpointer(db, tmp_path, clock) for _ in range(2)]
            written = await asyncio.gather(*(n.checkpoint() for n in nodes))
            assert sorted(w is None for w in written) == [False, True]
            assert [c.seq for c in await CheckpointStore(db).all()] == [1, 2]
        finally:
            await db.close()


def test_verifier_keys_are_read_as_lines_or_as_one_pem_and_bad_ones_are_refused(
    tmp_path: Path,
) -> None:
    signer = signer_for(tmp_path)
    (key,) = keys(tmp_path)
    assert key.text() == signer.verifier.text()
    assert VerifierKey.parse(key.text()).key_id == key.key_id
    pem = tmp_path / "key.pem"
    pem.write_bytes(
        signer.verifier.public.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    )
    assert [k.hex_id for k in read_verifier_keys(pem)] == [key.hex_id]
    name, key_id, blob = key.text().split("+", 2)  # base64 may hold "+" itself
    for bad in (f"{name}+00000000+{blob}", f"{name}+{key_id}+AAAA", "no plus signs"):
        with pytest.raises(CheckpointKeyError):
            VerifierKey.parse(bad)
    with pytest.raises(CheckpointKeyError):
        read_verifier_keys(tmp_path / "missing.pub")
