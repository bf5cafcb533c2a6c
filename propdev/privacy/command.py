"""``python run.py retention run [--as-of ISO-8601]``: retention applied as of a moment, once,
from the command line (``propdev.cli`` calls it); a report as JSON on stdout."""

from __future__ import annotations

import json
import sys
import time

from propdev.config import Settings
from propdev.privacy.errors import RetentionError
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
