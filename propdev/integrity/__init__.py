"""The audit proves itself: signed checkpoints over the heads of all chains, and verification.

The audit log (``propdev.storage.audit``) is a hash chain per shard. A node writes a signed
checkpoint every ``PROPDEV_AUDIT_CHECKPOINT_SECONDS``: the heads of all chains under an RFC 6962
Merkle root, signed with the checkpoint key (Ed25519, its own, in the data dir). ``audit
verify`` checks every chain and every checkpoint offline with the checkpoint's public keys;
``prove_inclusion`` shows that one entry is under a checkpoint. See docs/audit-integrity.md.
"""

from __future__ import annotations

from propdev.integrity.checkpoint import Checkpoint, Checkpointer, CheckpointStore
from propdev.integrity.errors import (
    BadCheckpointError,
    CheckpointKeyError,
    InconsistentChainsError,
    IntegrityError,
    NotCheckpointedError,
)
from propdev.integrity.keys import (
    KEY_FILE,
    PUBLIC_FILE,
    CheckpointSigner,
    VerifierKey,
    read_verifier_keys,
    rotate_checkpoint_key,
    signer_for,
)
from propdev.integrity.verify import (
    InclusionProof,
    Report,
    prove_inclusion,
    verify_inclusion,
    verify_store,
)

__all__ = (
    "KEY_FILE",
    "PUBLIC_FILE",
    "BadCheckpointError",
    "Checkpoint",
    "CheckpointKeyError",
    "CheckpointSigner",
    "CheckpointStore",
    "Checkpointer",
    "InclusionProof",
    "InconsistentChainsError",
    "IntegrityError",
    "NotCheckpointedError",
    "Report",
    "VerifierKey",
    "prove_inclusion",
    "read_verifier_keys",
    "rotate_checkpoint_key",
    "signer_for",
    "verify_inclusion",
    "verify_store",
)
