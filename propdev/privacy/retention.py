"""Retention: what is kept only so long, applied as of a moment, once a day by one node.

As of ``as_of`` (``docs/personal-data.md``):

* residents' events that occurred before ``as_of - events_days`` are deleted, and with them
  the open commands (and their steps) last updated before then: together they are a
  person's movements; refresh tokens and authorization codes that expired before then are
  deleted too (sessions long over);
* audit entries written before ``as_of - audit_days`` lose their personal fields; their
  decision, time, actor, action and ids stay, and the chain still verifies.

Each run is one transaction that also records it (``retention_runs``: as of, when, counts)
and appends ``retention.run`` to the audit log, counts in its reason. Runs move forward: an
``as_of`` earlier than the last run's is refused (``RetentionError``), nothing changed. On
PostgreSQL runs are serialised by an advisory lock held for the transaction, SQLite has one
writer: a daily run (``due_only``) that finds a run less than a day old does nothing, so the
nodes of a cluster that all try run it once.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import structlog

from propdev.privacy.errors import RetentionError
from propdev.storage import Database, run
from propdev.storage import audit as audit_log
from propdev.storage.audit import AuditRecord

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection

log = structlog.get_logger()

DAY = 86400.0
LOCK_KEY = 74218  # PostgreSQL advisory lock serialising retention runs across nodes
CHECK_EVERY = 3600.0  # seconds between a node's checks whether the daily run is due
FUTURE_MARGIN = 60.0  # an ``as_of`` this far ahead of the clock is refused


@dataclass(frozen=True, slots=True)
class RetentionPolicy:
    events_days: int = 365
    audit_days: int = 1095

    def events_before(self, as_of: float) -> float:
        return as_of - self.events_days * DAY

    def audit_before(self, as_of: float) -> float:
        return as_of - self.audit_days * DAY


@dataclass(frozen=True, slots=True)
class RetentionReport:
    as_of: float
    ran_at: float
    trigger: str
    counts: dict[str, int]

    def as_dict(self) -> dict[str, Any]:
        return {
            "as_of": _iso(self.as_of),
            "ran_at": _iso(self.ran_at),
            "trigger": self.trigger,
            **self.counts,
        }


def parse_as_of(text: str) -> float:
    """An ISO-8601 moment (a date alone is its midnight UTC; no zone means UTC) as epoch
    seconds; ``RetentionError`` naming the text when it is not one."""
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        raise RetentionError(
            f"--as-of {text!r}: not an ISO-8601 date or time (e.g. 2026-01-31T00:00:00Z)"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.timestamp()


def _iso(at: float) -> str:
    return dt.datetime.fromtimestamp(at, dt.UTC).isoformat()


# (count key, table and condition; :cut is the events cut-off)
_EXPIRED: tuple[tuple[str, str], ...] = (
    ("events_deleted", "events WHERE occurred_at < :cut"),
    (
        "command_steps_deleted",
        "command_steps WHERE command_id IN (SELECT id FROM commands WHERE updated_at < :cut)",
    ),
    ("commands_deleted", "commands WHERE updated_at < :cut"),
    ("sessions_deleted", "oauth_refresh_tokens WHERE expires_at < :cut"),
    ("authorization_codes_deleted", "oauth_codes WHERE expires_at < :cut"),
)


async def _delete(conn: AsyncConnection, where: str, cut: float) -> int:
    rows = await run(conn, f"SELECT COUNT(*) AS n FROM {where}", cut=cut)
    await run(conn, f"DELETE FROM {where}", cut=cut)
    return int(rows[0]["n"])


async def apply_retention(
    db: Database,
    policy: RetentionPolicy,
    *,
    as_of: float,
    now: float,
    actor: str,
    trigger: str,
    due_only: bool = False,
) -> RetentionReport | None:
    """Apply ``policy`` as of ``as_of`` (epoch seconds) in one transaction; ``now`` is when it
    runs. With ``due_only``, do nothing (None) when the last run is less than a day before
    ``as_of``. ``RetentionError`` when ``as_of`` is earlier than the last run's."""
    if as_of > now + FUTURE_MARGIN:
        raise RetentionError(
            f"as of {_iso(as_of)}: in the future (now is {_iso(now)}); retention is not "
            "applied ahead of time"
        )
    async with db.transaction() as conn:
        if db.dialect == "postgresql":
            await run(conn, "SELECT pg_advisory_xact_lock(:k)", k=LOCK_KEY)
        last = await run(conn, "SELECT MAX(as_of) AS as_of FROM retention_runs")
        last_as_of = last[0]["as_of"] if last else None
        if last_as_of is not None:
            if due_only and as_of - float(last_as_of) < DAY:
                return None
            if as_of < float(last_as_of):
                raise RetentionError(
                    f"as of {_iso(as_of)}: earlier than the last run's "
                    f"({_iso(float(last_as_of))}); retention only moves forward"
                )
        events_cut = policy.events_before(as_of)
        counts = {key: await _delete(conn, where, events_cut) for key, where in _EXPIRED}
        audit_cut = policy.audit_before(as_of)
        blanked = await run(
            conn,
            "SELECT COUNT(*) AS n FROM audit WHERE at < :cut AND personal IS NOT NULL",
            cut=audit_cut,
        )
        await run(
            conn,
            "UPDATE audit SET personal = NULL WHERE at < :cut AND personal IS NOT NULL",
            cut=audit_cut,
        )
        counts["audit_personal_blanked"] = int(blanked[0]["n"])
        await run(
            conn,
            "INSERT INTO retention_runs (as_of, ran_at, trigger, counts) "
            "VALUES (:as_of, :ran_at, :trigger, :counts)",
            as_of=as_of,
            ran_at=now,
            trigger=trigger,
            counts=json.dumps(counts, sort_keys=True),
        )
        reason = " ".join(f"{k}={v}" for k, v in counts.items())
        await audit_log.append(
            conn,
            db.dialect,
            AuditRecord(
                at=now,
                actor=actor,
                action="retention.run",
                access_point_id=None,
                decision="granted",
                reason=f"as_of={_iso(as_of)} trigger={trigger} {reason}",
            ),
        )
    return RetentionReport(as_of, now, trigger, counts)


async def last_run(db: Database) -> dict[str, Any] | None:
    """The latest run recorded (its ``as_of``), or None."""
    row = await db.fetch_one(
        "SELECT as_of, ran_at, trigger, counts FROM retention_runs ORDER BY as_of DESC, id DESC "
        "LIMIT 1"
    )
    if row is None:
        return None
    return {**row, "counts": json.loads(row["counts"])}


class DailyRetention:
    """A node's daily retention run: ``tick()`` runs it as of the node's clock when it is due
    (the clock is injectable: a test moves it and ticks); ``start()`` ticks every
    ``CHECK_EVERY`` seconds until ``stop()``."""

    def __init__(
        self,
        db: Database,
        policy: RetentionPolicy,
        *,
        node_id: str,
        clock: Callable[[], float],
        check_every: float = CHECK_EVERY,
    ) -> None:
        self.db = db
        self.policy = policy
        self.node_id = node_id
        self.clock = clock
        self.check_every = check_every
        self._task: asyncio.Task[None] | None = None

    async def tick(self) -> RetentionReport | None:
        """Run retention as of now if no run is less than a day old; the report, or None."""
        now = self.clock()
        report = await apply_retention(
            self.db,
            self.policy,
            as_of=now,
            now=now,
            actor=f"node:{self.node_id}",
            trigger="daily",
            due_only=True,
        )
        if report is not None:
            log.info("retention_run", **report.as_dict())
        return report

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._loop(), name="daily-retention")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _loop(self) -> None:
        while True:  # the first check an interval after start: a restart is not a run
            await asyncio.sleep(self.check_every)
            try:
                await self.tick()
            except Exception:  # the store down: try again at the next check
                log.exception("retention_run_failed")
