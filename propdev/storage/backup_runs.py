"""Backups made of this store: when each finished and how big it was (``backup_runs``).

``backup create`` records its run once the file is safely written; a node reads the latest
to export ``propdev_backup_last_success_timestamp_seconds`` (the *backup late* alert), since
the command runs as a process of its own and cannot set a node's gauge.
"""

from __future__ import annotations

from propdev.storage.db import Database


async def record_run(db: Database, *, at: float, size: int, cluster_id: str) -> None:
    await db.execute(
        "INSERT INTO backup_runs (at, bytes, cluster_id) VALUES (:at, :size, :cluster)",
        at=at,
        size=size,
        cluster=cluster_id,
    )


async def last_run_at(db: Database) -> float | None:
    """The time the latest backup of this store finished, ``None`` if there was none."""
    row = await db.fetch_one("SELECT MAX(at) AS at FROM backup_runs")
    return None if row is None or row["at"] is None else float(row["at"])
