"""The cluster's identity: a random id made once per store, kept in ``cluster_identity``.

Every node of a cluster shares the store, so the id names the installation; a backup carries
it (``propdev.backup``), and a restore keeps it: the restored store *is* that cluster again.
"""

from __future__ import annotations

import time
import uuid

from propdev.storage.db import Database


async def cluster_id(db: Database) -> str:
    """The store's cluster id, made (a random UUID) on first need; every caller gets the same."""
    await db.execute(
        "INSERT INTO cluster_identity (singleton, id, created_at) VALUES (1, :id, :now)"
        " ON CONFLICT (singleton) DO NOTHING",
        id=str(uuid.uuid4()),
        now=time.time(),
    )
    row = await db.fetch_one("SELECT id FROM cluster_identity WHERE singleton = 1")
    assert row is not None  # inserted above, or by whoever was first
    return str(row["id"])
