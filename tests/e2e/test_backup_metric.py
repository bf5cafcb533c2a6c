"""The backup-late and checkpoint-late alerts' gauges: a running node exports the time of the
store's last backup, which ``backup create`` (a process of its own) records in the store, and
of the last signed audit checkpoint, whichever node (or process) wrote it."""

from __future__ import annotations

import datetime as dt
import functools
import json
import re
import time
from pathlib import Path

from propdev.integrity import Checkpointer, signer_for
from propdev.storage import Database
from tests.e2e.conftest import RunningNode
from tests.support.processes import cli_env, run_cli

BACKUP = "propdev_backup_last_success_timestamp_seconds"
CHECKPOINT = "propdev_audit_checkpoint_last_timestamp_seconds"


async def gauge(node: RunningNode, name: str) -> float:
    async with node.http.get(f"{node.url}/metrics") as resp:
        assert resp.status == 200
        found = re.search(rf"^{name} (\S+)$", await resp.text(), re.M)
    assert found is not None, f"{name} is not exported"
    return float(found.group(1))


async def last_backup(node: RunningNode) -> float:
    return await gauge(node, BACKUP)


async def test_a_backup_made_by_the_command_shows_in_the_nodes_metrics(
    node: RunningNode, tmp_path: Path
) -> None:
    assert await last_backup(node) == 0.0  # never backed up
    made = await run_cli(
        ["backup", "create", str(tmp_path / "one.backup")], cli_env(node.settings.data_dir)
    )
    assert made.returncode == 0, str(made)
    created = dt.datetime.fromisoformat(json.loads(made.stdout)["created_at"]).timestamp()
    first = await last_backup(node)
    assert first >= created
    made = await run_cli(
        ["backup", "create", str(tmp_path / "two.backup")], cli_env(node.settings.data_dir)
    )
    assert made.returncode == 0, str(made)
    assert await last_backup(node) > first


async def test_a_checkpoint_written_elsewhere_shows_in_the_nodes_metrics(node: RunningNode) -> None:
    assert await gauge(node, CHECKPOINT) == 0.0  # none yet (the first is a minute away)
    await node.token_for("anna")  # a sign-in: an audit entry for the checkpoint to cover
    db = Database(node.settings.database_url)
    try:  # another writer of the same store: a node of the cluster, say
        written = await Checkpointer(
            db, functools.partial(signer_for, node.settings.data_dir), interval=60, clock=time.time
        ).checkpoint(force=True)
    finally:
        await db.close()
    assert written is not None
    assert await gauge(node, CHECKPOINT) == written.at
