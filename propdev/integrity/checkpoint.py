"""Signed checkpoints over the heads of all audit chains, and the node task writing them.

A checkpoint is a C2SP signed note (``keys``) whose text is shaped like a C2SP
``tlog-checkpoint``::

    propdev/audit            origin (= the key's name)
    3                        tree size: the number of leaves, one per chain
    <base64 Merkle root>     RFC 6962 root over the leaves, in chain order
    seq 12                   extension lines: the checkpoint's number (1, 2, ...),
    time 1765118961000       its time (Unix milliseconds),
    entries 4711             and the entries of all chains together

A leaf is the ASCII line ``<chain> <count> <last id> <head hash>``: the chain, how many
entries it has, its last entry's id and hash. The heads are stored beside the note (JSON),
so that a verifier recomputes the root from them and checks each head against its chain.

``Checkpointer.checkpoint`` writes the next one, inside a transaction that holds a
PostgreSQL advisory lock tried without waiting (one node at a time in a cluster; SQLite has
one writer), unless the last checkpoint is younger than half the interval or nothing changed.
It refuses (``InconsistentChainsError``) when a head of the last checkpoint is no longer in
its chain: it never signs a checkpoint inconsistent with the one before.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import structlog
from sqlalchemy.exc import SQLAlchemyError

import propdev.integrity.merkle as merkle
from propdev.integrity.errors import BadCheckpointError, InconsistentChainsError
from propdev.integrity.keys import ORIGIN, CheckpointSigner, VerifierKey, open_note
from propdev.storage import Database, Row, StoreError, run
from propdev.storage.audit import CHAINS, ChainHead

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection

__all__ = ("Checkpoint", "CheckpointStore", "Checkpointer", "leaf_of", "parse_note")

log = structlog.get_logger(__name__)

_LOCK_KEY = 74203  # pg_try_advisory_xact_lock: the one node writing a checkpoint
_FINAL_TIMEOUT = 10.0  # seconds a stopping node gives its last checkpoint
_COLUMNS = "seq, at, entries, root, key_id, heads, note, node_id"


def leaf_of(head: ChainHead) -> bytes:
    return f"{head.chain} {head.count} {head.last_id} {head.hash}".encode()


def checkpoint_text(seq: int, at: float, heads: Sequence[ChainHead], root: bytes) -> str:
    entries = sum(h.count for h in heads)
    return (
        f"{ORIGIN}\n{len(heads)}\n{base64.b64encode(root).decode()}\n"
        f"seq {seq}\ntime {round(at * 1000)}\nentries {entries}\n"
    )


@dataclass(frozen=True, slots=True)
class NoteBody:
    """What a checkpoint's signed text says."""

    size: int
    root: bytes
    seq: int
    time_ms: int
    entries: int


def parse_note(text: str) -> NoteBody:
    lines = text.splitlines()
    try:
        origin, size, root, *extensions = lines
        fields = dict(line.split(" ", 1) for line in extensions)
        body = NoteBody(
            size=int(size),
            root=base64.b64decode(root, validate=True),
            seq=int(fields["seq"]),
            time_ms=int(fields["time"]),
            entries=int(fields["entries"]),
        )
    except (ValueError, KeyError, binascii.Error):
        raise BadCheckpointError("the checkpoint's text is malformed") from None
    if origin != ORIGIN or len(body.root) != 32:
        raise BadCheckpointError(f"not a checkpoint of {ORIGIN}")
    return body


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A stored checkpoint: the signed note and the heads under its root."""

    seq: int
    at: float
    entries: int
    root: str  # base64, as in the note
    key_id: str  # hex
    heads: tuple[ChainHead, ...]
    note: str
    node_id: str = ""

    @classmethod
    def from_row(cls, row: Row) -> Checkpoint:
        heads = tuple(ChainHead(*h) for h in json.loads(row["heads"]))
        return cls(
            seq=int(row["seq"]),
            at=float(row["at"]),
            entries=int(row["entries"]),
            root=row["root"],
            key_id=row["key_id"],
            heads=heads,
            note=row["note"],
            node_id=row["node_id"],
        )

    def head(self, chain: int) -> ChainHead | None:
        return next((h for h in self.heads if h.chain == chain), None)

    def verify(self, keys: Iterable[VerifierKey]) -> NoteBody:
        """Check the signature and that the note says what the stored heads give."""
        text, key = open_note(self.note, keys)
        body = parse_note(text)
        heads = sorted(self.heads, key=lambda h: h.chain)
        if list(self.heads) != heads or len({h.chain for h in heads}) != len(heads):
            raise BadCheckpointError("its heads are not one per chain in chain order")
        if merkle.root([leaf_of(h) for h in heads]) != body.root or body.size != len(heads):
            raise BadCheckpointError("its heads do not give the signed Merkle root")
        if body.seq != self.seq or body.entries != self.entries:
            raise BadCheckpointError("its stored number or entry count differs from the note")
        if key.hex_id != self.key_id:
            raise BadCheckpointError("its stored key id differs from the signature's")
        return body

    def as_json(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "at": self.at,
            "entries": self.entries,
            "chains": len(self.heads),
            "root": self.root,
            "key_id": self.key_id,
            "node_id": self.node_id,
            "note": self.note,
        }


class CheckpointStore:
    """The stored checkpoints (schema version 17)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def latest(self) -> Checkpoint | None:
        row = await self.db.fetch_one(
            f"SELECT {_COLUMNS} FROM audit_checkpoints ORDER BY seq DESC LIMIT 1"
        )
        return None if row is None else Checkpoint.from_row(row)

    async def all(self) -> list[Checkpoint]:
        rows = await self.db.fetch_all(f"SELECT {_COLUMNS} FROM audit_checkpoints ORDER BY seq")
        return [Checkpoint.from_row(r) for r in rows]

    async def get(self, seq: int) -> Checkpoint | None:
        row = await self.db.fetch_one(
            f"SELECT {_COLUMNS} FROM audit_checkpoints WHERE seq = :seq", seq=seq
        )
        return None if row is None else Checkpoint.from_row(row)


async def _heads(conn: AsyncConnection, before: Checkpoint | None) -> dict[int, ChainHead]:
    """The chains' heads now, counted on from ``before``'s (whose heads must still be there).

    Within a chain ids grow in commit order (its lock is held from reading the last hash to
    the commit), so what a statement sees of a chain is a prefix of it.
    """
    old = before.heads if before is not None else ()
    heads = {h.chain: ChainHead(h.chain, h.count, h.last_id, h.hash) for h in old}
    if heads:
        ids = ",".join(str(int(h.last_id)) for h in heads.values())
        rows = await run(conn, f"SELECT id, chain, hash FROM audit WHERE id IN ({ids})")
        found = {int(r["id"]): r for r in rows}
        for signed in heads.values():
            row = found.get(signed.last_id)
            if row is None or int(row["chain"]) != signed.chain or row["hash"] != signed.hash:
                raise InconsistentChainsError(
                    f"chain {signed.chain}: entry {signed.last_id}, its head at checkpoint "
                    f"{before.seq if before else 0}, is gone or changed"
                )
    for chain in sorted(set(range(CHAINS)) | heads.keys()):
        head = heads.get(chain)
        rows = await run(
            conn,
            "SELECT count(*) AS n, max(id) AS last FROM audit WHERE chain = :c AND id > :after",
            c=chain,
            after=head.last_id if head else 0,
        )
        n = int(rows[0]["n"])
        if not n:
            continue
        last = int(rows[0]["last"])
        (row,) = await run(conn, "SELECT hash FROM audit WHERE id = :id", id=last)
        heads[chain] = ChainHead(chain, (head.count if head else 0) + n, last, row["hash"])
    return heads


class Checkpointer:
    """Writes a checkpoint every ``interval`` seconds (one node of a cluster at a time)."""

    def __init__(
        self,
        db: Database,
        signer: Callable[[], CheckpointSigner],
        *,
        interval: float,
        clock: Callable[[], float],
        node_id: str = "",
    ) -> None:
        self.db = db
        self.signer = signer  # called at each checkpoint: a rotated key is taken at once
        self.interval = interval
        self.clock = clock
        self.node_id = node_id
        self._task: asyncio.Task[None] | None = None

    async def checkpoint(self, *, force: bool = False) -> Checkpoint | None:
        """Write the next checkpoint and return it; None when another node holds the
        checkpoint lock, the last one is younger than half the interval (unless ``force``)
        or no chain moved since it."""
        async with self.db.transaction() as conn:
            if self.db.dialect == "postgresql":
                rows = await run(conn, "SELECT pg_try_advisory_xact_lock(:k) AS got", k=_LOCK_KEY)
                if not rows[0]["got"]:
                    return None
            rows = await run(
                conn, f"SELECT {_COLUMNS} FROM audit_checkpoints ORDER BY seq DESC LIMIT 1"
            )
            before = Checkpoint.from_row(rows[0]) if rows else None
            now = self.clock()
            if before is not None and not force and now - before.at < self.interval / 2:
                return None
            heads = await _heads(conn, before)
            ordered = tuple(heads[c] for c in sorted(heads))
            if before is not None and ordered == before.heads:
                return None
            if before is None and not ordered:
                return None
            signer = self.signer()
            seq = before.seq + 1 if before else 1
            root = merkle.root([leaf_of(h) for h in ordered])
            note = signer.sign(checkpoint_text(seq, now, ordered, root))
            checkpoint = Checkpoint(
                seq=seq,
                at=now,
                entries=sum(h.count for h in ordered),
                root=base64.b64encode(root).decode(),
                key_id=signer.verifier.hex_id,
                heads=ordered,
                note=note,
                node_id=self.node_id,
            )
            await run(
                conn,
                f"INSERT INTO audit_checkpoints ({_COLUMNS}) VALUES "
                "(:seq, :at, :entries, :root, :key_id, :heads, :note, :node_id)",
                seq=seq,
                at=now,
                entries=checkpoint.entries,
                root=checkpoint.root,
                key_id=checkpoint.key_id,
                heads=json.dumps([[h.chain, h.count, h.last_id, h.hash] for h in ordered]),
                note=note,
                node_id=self.node_id,
            )
        log.info(
            "audit_checkpoint",
            seq=seq,
            entries=checkpoint.entries,
            chains=len(ordered),
            root=checkpoint.root,
            key_id=checkpoint.key_id,
        )
        return checkpoint

    async def _tick(self, *, force: bool = False) -> None:
        try:
            await self.checkpoint(force=force)
        except InconsistentChainsError as exc:
            log.error("audit_checkpoint_refused", error=str(exc))
        except (StoreError, SQLAlchemyError, OSError, ValueError) as exc:  # store, key file
            log.warning("audit_checkpoint_failed", error=str(exc))

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            await self._tick()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="audit-checkpoints")

    async def stop(self, *, final: bool = True) -> None:
        """Stop the timer; with ``final``, write a last checkpoint if a chain moved."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if final and task is not None:
            try:  # bounded: a store that does not answer must not hold up the node's stop
                await asyncio.wait_for(self._tick(force=True), timeout=_FINAL_TIMEOUT)
            except TimeoutError:
                log.warning("audit_checkpoint_failed", error="no answer from the store")
