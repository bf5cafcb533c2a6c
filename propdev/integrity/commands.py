"""``run.py audit …``: verify the store offline, rotate the checkpoint key, show its keys."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

from propdev.admin_cli import cli_audit
from propdev.config import Settings
from propdev.integrity.errors import CheckpointKeyError
from propdev.integrity.keys import (
    PUBLIC_FILE,
    VerifierKey,
    current_key,
    read_verifier_keys,
    rotate_checkpoint_key,
    verifier_keys_text,
)
from propdev.integrity.verify import verify_store
from propdev.storage import Database

__all__ = ("CHECKPOINT_KEY_ROTATE", "keys_command", "rotate_command", "verify_command")

CHECKPOINT_KEY_ROTATE = "checkpoint_key.rotate"


def _keys(settings: Settings, public_key: Path | None) -> list[VerifierKey]:
    path = public_key or settings.data_dir / PUBLIC_FILE
    if public_key is None and not path.exists():
        return []  # no checkpoint was ever signed here: any checkpoint found fails
    return read_verifier_keys(path)


async def verify_command(settings: Settings, public_key: Path | None) -> int:
    """Exit 0 when every chain and checkpoint holds, 1 naming the first problem, 2 when
    the verifier keys cannot be read."""
    try:
        keys = _keys(settings, public_key)
    except CheckpointKeyError as exc:
        print(f"--public-key: {exc}", file=sys.stderr)
        return 2
    db = Database(settings.database_url)
    try:
        report = await verify_store(db, keys)
    finally:
        await db.close()
    print(json.dumps(report.as_json()))
    if not report.ok:
        print(report.problem, file=sys.stderr)
    return 0 if report.ok else 1


def rotate_command(settings: Settings) -> int:
    """A new checkpoint key, audited (``checkpoint_key.rotate``, actor ``cli``) before it is
    made: a store that cannot take the entry stops the command, nothing changed."""
    try:
        previous = current_key(settings.data_dir)
    except CheckpointKeyError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    reason = f"previous={previous.hex_id if previous else ''}"
    asyncio.run(cli_audit(settings, CHECKPOINT_KEY_ROTATE, reason=reason))
    try:
        old, new = rotate_checkpoint_key(settings.data_dir)
    except CheckpointKeyError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    print(
        json.dumps(
            {
                "key_id": new.hex_id,
                "verifier_key": new.text(),
                "previous_key_id": old.hex_id if old else None,
                "verifier_keys": str(settings.data_dir / PUBLIC_FILE),
            }
        )
    )
    return 0


def keys_command(settings: Settings) -> int:
    """Print the verifier keys of every checkpoint key (give them to whoever verifies)."""
    try:
        keys = read_verifier_keys(settings.data_dir / PUBLIC_FILE)
    except CheckpointKeyError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    print(verifier_keys_text(keys), end="")
    return 0
