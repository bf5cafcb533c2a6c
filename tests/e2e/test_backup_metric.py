"""The backup-late alert's gauge: a running node exports the time of the store's last backup,
which ``backup create`` (a process of its own) records in the store."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

from tests.e2e.conftest import RunningNode
from tests.support.processes import cli_env, run_cli

GAUGE = re.compile(r"^propdev_backup_last_success_timestamp_seconds (\S+)$", re.M)


async def last_backup(node: RunningNode) -> float:
    async with node.http.get(f"{node.url}/metrics") as resp:
        assert resp.status == 200
        found = GAUGE.search(await resp.text())
    assert found is not None, "the gauge is not exported"
    return float(found.group(1))


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
