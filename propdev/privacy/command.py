"""The personal-data commands of ``run.py`` (``propdev.cli`` calls them); a report as JSON on
stdout, a refusal on stderr:

* ``retention run [--as-of ISO-8601]``: retention applied as of a moment, once;
* ``privacy erasures export``: this store's erasure list, for a restored one;
* ``privacy erasures reapply FILE``: the erasures of a list (or of the audit stream) that this
  store has not applied, applied (``propdev.privacy.reapply``).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from propdev.config import Settings
from propdev.privacy.erasure_list import ErasureList, parse
from propdev.privacy.errors import ErasureListError, RetentionError
from propdev.privacy.reapply import ReapplyReport, erasure_list_of, reapply
from propdev.privacy.retention import RetentionPolicy, apply_retention, parse_as_of
from propdev.storage import Database, migrate

ACTOR = "cli:retention"


def policy_of(settings: Settings) -> RetentionPolicy:
    return RetentionPolicy(settings.retention_events_days, settings.retention_audit_days)


async def retention_command(settings: Settings, as_of: str | None) -> int:
    """Exit 0 with the run's report; 2 with the reason on stderr when the run is refused
    (a malformed ``--as-of``, one in the future or earlier than the last run's)."""
    now = time.time()
    try:
        moment = now if as_of is None else parse_as_of(as_of)
    except RetentionError as exc:
        print(f"retention: {exc}", file=sys.stderr)
        return 2
    db = Database(settings.database_url)
    try:
        await migrate(db)
        report = await apply_retention(
            db, policy_of(settings), as_of=moment, now=now, actor=ACTOR, trigger="cli"
        )
    except RetentionError as exc:
        print(f"retention: {exc}; nothing was changed", file=sys.stderr)
        return 2
    finally:
        await db.close()
    assert report is not None  # only a daily run (due_only) may find nothing to do
    print(json.dumps(report.as_dict()))
    return 0


def read_erasure_list(path: Path) -> ErasureList:
    """The erasure list (or audit stream lines) in the file at ``path``; a file that cannot
    be read, or is neither, is ``ErasureListError``."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ErasureListError(f"{path}: cannot be read ({exc})") from None
    try:
        return parse(text)
    except ErasureListError as exc:
        raise ErasureListError(f"{path}: {exc}") from None


async def reapply_erasures(database_url: str, erasure_list: ErasureList) -> ReapplyReport:
    """Migrate the store at ``database_url`` (a restored one may be older) and re-apply."""
    db = Database(database_url)
    try:
        await migrate(db)
        return await reapply(db, erasure_list)
    finally:
        await db.close()


async def erasures_export_command(settings: Settings) -> int:
    """Exit 0 with this store's erasure list on stdout."""
    db = Database(settings.database_url)
    try:
        await migrate(db)
        doc = await erasure_list_of(db, now=time.time())
    finally:
        await db.close()
    print(json.dumps(doc, indent=1))
    return 0


async def reapply_command(settings: Settings, file: str) -> int:
    """Exit 0 with what was applied, skipped and recorded; 2 with the reason on stderr when
    the file is refused (nothing changed)."""
    try:
        erasure_list = read_erasure_list(Path(file))
        report = await reapply_erasures(settings.database_url, erasure_list)
    except ErasureListError as exc:
        print(f"privacy erasures reapply: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(report.as_dict()))
    return 0
