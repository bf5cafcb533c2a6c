"""Verifying the audit offline: every chain, every checkpoint, and one entry's inclusion.

``verify_store`` reads the store and trusts only the verifier keys it is given (never keys
found in the store). It fails on the first of:

* a checkpoint whose signature no given key verifies, whose stored heads do not give its
  signed root, or whose number does not follow the one before (in number order);
* an entry, in id order, that breaks its chain (``ChainWalk``: edited, deleted, moved
  between chains, or two entries of a chain swapped) or that sits where a checkpoint put
  another head (a chain rewritten under a checkpoint);
* a chain shorter than a checkpoint's head says (truncated: its last entries deleted).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import propdev.integrity.merkle as merkle
from propdev.integrity.checkpoint import Checkpoint, CheckpointStore, leaf_of, parse_note
from propdev.integrity.errors import BadCheckpointError, NotCheckpointedError
from propdev.integrity.keys import VerifierKey, open_note
from propdev.storage import Database
from propdev.storage.audit import ChainHead, ChainWalk, entries, entry_body, link_hash

__all__ = ("InclusionProof", "Report", "prove_inclusion", "verify_inclusion", "verify_store")


@dataclass(frozen=True, slots=True)
class Report:
    """What ``verify_store`` found; on failure the first problem, in the order above."""

    ok: bool
    checked: int  # entries
    chains: int
    checkpoints: int  # checkpoints verified
    first_bad_id: int | None = None  # the entry (or the missing checkpointed head)
    chain: int | None = None
    checkpoint: int | None = None  # the checkpoint's seq, when one is involved
    problem: str = ""

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


async def _has_checkpoints(db: Database) -> bool:
    row = await db.fetch_one("SELECT version FROM schema_version WHERE version = 17")
    return row is not None


async def verify_store(db: Database, keys: Sequence[VerifierKey]) -> Report:
    checkpoints = await CheckpointStore(db).all() if await _has_checkpoints(db) else []
    # (chain, position) -> the checkpoints' heads there: (seq, id, hash)
    expected: dict[tuple[int, int], list[tuple[int, int, str]]] = defaultdict(list)
    seq = 0
    for cp in checkpoints:
        problem = ""
        try:
            cp.verify(keys)
        except BadCheckpointError as exc:
            problem = f"checkpoint {cp.seq}: {exc}"
        if not problem and cp.seq != seq + 1:
            problem = f"checkpoint {cp.seq} follows checkpoint {seq}: some are missing"
        if problem:
            return Report(False, 0, 0, seq, checkpoint=cp.seq, problem=problem)
        seq = cp.seq
        for head in cp.heads:
            expected[head.chain, head.count].append((cp.seq, head.last_id, head.hash))
    walk = ChainWalk()
    async for row in entries(db):
        chain = int(row.get("chain", 0))
        reason = walk.step(row)
        if reason is None:
            head = walk.heads[chain]
            for cp_seq, last_id, head_hash in expected.get((chain, head.count), ()):
                if (last_id, head_hash) != (head.last_id, head.hash):
                    reason = (
                        f"checkpoint {cp_seq} has entry {last_id} here, as its chain's "
                        f"entry {head.count}: the chain was rewritten under it"
                    )
                    return _bad(walk, len(checkpoints), row, chain, reason, cp_seq)
        if reason is not None:
            return _bad(walk, len(checkpoints), row, chain, reason, None)
    for (chain, count), heads in sorted(expected.items()):
        have = walk.heads.get(chain)
        if have is None or have.count < count:
            cp_seq, last_id, _ = heads[0]
            return Report(
                False,
                walk.checked,
                len(walk.heads),
                len(checkpoints),
                first_bad_id=last_id,
                chain=chain,
                checkpoint=cp_seq,
                problem=(
                    f"chain {chain} truncated: checkpoint {cp_seq} counts {count} entries up "
                    f"to entry {last_id}; the chain has {have.count if have else 0}"
                ),
            )
    return Report(True, walk.checked, len(walk.heads), len(checkpoints))


def _bad(
    walk: ChainWalk, checkpoints: int, row: Any, chain: int, reason: str, seq: int | None
) -> Report:
    entry_id = int(row["id"])
    return Report(
        False,
        walk.checked,
        len(walk.heads),
        checkpoints,
        first_bad_id=entry_id,
        chain=chain,
        checkpoint=seq,
        problem=f"chain {chain}, entry {entry_id}: {reason}",
    )


@dataclass(frozen=True, slots=True)
class InclusionProof:
    """That an entry is under a checkpoint: the entry's place in its chain, the bodies of
    the entries after it up to the checkpointed head (the hash links), the head's audit
    path to the Merkle root, and the signed note. Hashes and bodies in hex."""

    entry_id: int
    chain: int
    position: int  # 1 for a chain's first entry
    prev_hash: str
    body: str
    links: tuple[str, ...]
    head: tuple[int, int, int, str]  # chain, count, last id, hash
    leaf_index: int
    tree_size: int
    audit_path: tuple[str, ...]
    note: str

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


async def prove_inclusion(db: Database, entry_id: int, seq: int | None = None) -> InclusionProof:
    """The proof that entry ``entry_id`` is under checkpoint ``seq`` (default the latest)."""
    store = CheckpointStore(db)
    cp: Checkpoint | None = await (store.latest() if seq is None else store.get(seq))
    entry = await db.fetch_one("SELECT * FROM audit WHERE id = :id", id=entry_id)
    if cp is None or entry is None:
        raise NotCheckpointedError(f"entry {entry_id}: no such entry or checkpoint")
    chain = int(entry["chain"])
    head = cp.head(chain)
    if head is None or head.last_id < entry_id:
        raise NotCheckpointedError(f"entry {entry_id} is after checkpoint {cp.seq}")
    rows = await db.fetch_all(
        "SELECT * FROM audit WHERE chain = :c AND id >= :id AND id <= :last ORDER BY id",
        c=chain,
        id=entry_id,
        last=head.last_id,
    )
    bodies = [entry_body(r) for r in rows]
    if any(b is None for b in bodies):
        raise NotCheckpointedError(f"chain {chain} does not verify after entry {entry_id}")
    position = head.count - len(rows) + 1
    index = [h.chain for h in cp.heads].index(chain)
    path = merkle.inclusion_path(index, [leaf_of(h) for h in cp.heads])
    return InclusionProof(
        entry_id=entry_id,
        chain=chain,
        position=position,
        prev_hash=entry["prev_hash"],
        body=bytes(bodies[0] or b"").hex(),
        links=tuple(bytes(b or b"").hex() for b in bodies[1:]),
        head=(head.chain, head.count, head.last_id, head.hash),
        leaf_index=index,
        tree_size=len(cp.heads),
        audit_path=tuple(p.hex() for p in path),
        note=cp.note,
    )


def verify_inclusion(proof: InclusionProof, entry_hash: str, keys: Sequence[VerifierKey]) -> bool:
    """Whether ``proof`` shows the entry whose hash is ``entry_hash`` under a checkpoint
    signed by one of ``keys``: its body hashes to it, the links lead to the chain's head,
    the head's leaf is in the Merkle tree whose root the note signs."""
    try:
        text, _ = open_note(proof.note, keys)
        note = parse_note(text)
        h = link_hash(proof.prev_hash, bytes.fromhex(proof.body))
        if h != entry_hash:
            return False
        for body in proof.links:
            h = link_hash(h, bytes.fromhex(body))
        chain, count, last_id, head_hash = proof.head
        if h != head_hash or chain != proof.chain or proof.position + len(proof.links) != count:
            return False
        leaf = merkle.leaf_hash(leaf_of(ChainHead(chain, count, last_id, head_hash)))
        path = [bytes.fromhex(p) for p in proof.audit_path]
    except (BadCheckpointError, ValueError):
        return False
    return proof.tree_size == note.size and merkle.verify_inclusion(
        proof.leaf_index, proof.tree_size, leaf, path, note.root
    )
