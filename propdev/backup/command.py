"""``run.py backup create|verify|restore FILE``: JSON on stdout, a clear error on stderr.

A restore brings back everyone the backup holds, the people erased since among them: with
``--erasures LIST`` it re-applies their erasures before it returns (the list is read, and
checked against the backup's cluster, before anything is written); without, it says on stderr
what to run before the nodes serve (``docs/backup.md``, *After a restore*).
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from propdev.backup.errors import BackupError
from propdev.backup.service import create, describe, restore, verify
from propdev.config import Settings
from propdev.privacy import ErasureList, ErasureListError, PrivacyError, read_erasure_list
from propdev.privacy import reapply_erasures as reapply
from propdev.security.errors import SecurityError
from propdev.storage import StoreError

REMINDER = (
    "backup restore: this backup was made at {created_at}: anyone erased after then is back "
    "in the restored store. Before the nodes serve, re-apply the erasures made since: "
    "`python run.py privacy erasures export > erasures.json` on a store that lived on (or the "
    "audit stream's resident.erase lines since then), then "
    "`python run.py privacy erasures reapply erasures.json` here (docs/personal-data.md)."
)


def _erasures_for(path: Path, erasures: str) -> ErasureList:
    """The erasure list to re-apply, refused before the restore writes anything if it is
    malformed or names another cluster than the backup's."""
    erasure_list = read_erasure_list(Path(erasures))
    backup_cluster = describe(path).get("cluster_id")
    if erasure_list.cluster_id is not None and erasure_list.cluster_id != backup_cluster:
        raise ErasureListError(
            f"{erasures}: the erasure list is of cluster {erasure_list.cluster_id}, the backup "
            f"of cluster {backup_cluster}"
        )
    return erasure_list


def _after_restore(settings: Settings, report: dict[str, Any], todo: ErasureList | None) -> int:
    if todo is None:
        report["erasures"] = "not re-applied"
        print(REMINDER.format(created_at=report["created_at"]), file=sys.stderr)
        print(json.dumps(report))
        return 0
    try:
        done = asyncio.run(reapply(settings.database_url, todo))
    except (PrivacyError, StoreError) as exc:
        print(
            f"backup restore: restored, but the erasures were not re-applied: {exc}. Before the "
            "nodes serve, run `python run.py privacy erasures reapply FILE`.",
            file=sys.stderr,
        )
        report["erasures"] = {"ok": False, "error": type(exc).__name__, "detail": str(exc)}
        print(json.dumps(report))
        return 1
    report["erasures"] = done.as_dict()
    print(json.dumps(report))
    return 0


def backup_command(settings: Settings, action: str, file: str, erasures: str | None = None) -> int:
    """Run one action; exit 0 with a JSON report, or 1 with ``backup <action>: <why>``.
    ``erasures``: a restore's ``--erasures`` file."""
    path = Path(file)
    todo: ErasureList | None = None
    try:
        if action == "create":
            report = create(settings, path)
        elif action == "verify":
            report = verify(settings, path)
        else:
            if erasures is not None:
                todo = _erasures_for(path, erasures)
            report = restore(settings, path)
    except (BackupError, SecurityError, StoreError, ErasureListError) as exc:
        print(f"backup {action}: {exc}", file=sys.stderr)
        print(json.dumps({"ok": False, "error": type(exc).__name__, "detail": str(exc)}))
        return 1
    if action == "restore":
        return _after_restore(settings, report, todo)
    print(json.dumps(report))
    return 0
