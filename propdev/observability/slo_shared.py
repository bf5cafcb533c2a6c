"""``RedisSlo``: the SLO counts of a cluster's nodes added up in the cluster's Redis, so that
``GET /admin/api/v1/slo`` on any node shows the cluster's figures.

Why buckets in Redis and not a sum of the nodes' Prometheus counters: a node's counters die
with it (a node killed mid-incident would take its bad requests out of the error budget), and
summing them needs every node up and reachable; buckets are written once and outlive nodes.

Each node's ``SloTracker`` collects its counts per objective and minute (``pending``), in
memory, on the request path; every ``flush_every`` seconds (and before each report) they are
added with ``HINCRBY`` to two buckets per objective -- the minute's
(``slo:<objective>:m:<minute>``, kept six hours) and the hour's (``slo:<objective>:h:<hour>``,
kept over the objective's window) -- each a hash of ``g`` (good) and ``t`` (total) that
expires on its own. A report reads the buckets of every window in one pipeline and computes
the same figures as a node's (``SloTracker.report``), over the cluster's counts.

Redis unreachable: the counts not flushed stay pending (added on the next flush; bounded by
``MAX_PENDING`` minutes' worth per objective), the failure is logged, and the report is the
node's own (``scope: "node"``).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from typing import Any

import structlog

from propdev.observability.slo import DAY, MINUTE_SPAN, SloTracker

log = structlog.get_logger()

MINUTE, HOUR = 60.0, 3600.0
MAX_PENDING = 24 * 60
"""Minutes of counts per objective a node keeps while Redis is away (older ones are dropped)."""


class _Buckets:
    """Good/total by (width, index) as read from Redis; ``window`` as ``WindowedCounter``'s."""

    def __init__(self, cells: dict[tuple[float, int], tuple[int, int]]) -> None:
        self._cells = cells

    def window(self, now: float, span: float) -> tuple[int, int]:
        width = MINUTE if math.ceil(span / MINUTE) < _minute_slots() else HOUR
        current = int(now // width)
        good = total = 0
        for index in range(current - math.ceil(span / width) + 1, current + 1):
            g, t = self._cells.get((width, index), (0, 0))
            good += g
            total += t
        return good, total


def _minute_slots() -> int:
    return math.ceil(MINUTE_SPAN / MINUTE) + 1  # as the node's minute ring


class RedisSlo:
    """This node's SLO counts flushed to the cluster's Redis under ``prefix``; the cluster's
    report read back."""

    def __init__(
        self,
        tracker: SloTracker,
        redis: Any,
        *,
        prefix: str,
        flush_every: float = 5.0,
        op_timeout: float = 2.0,
    ) -> None:
        self.tracker = tracker
        self.redis = redis
        self.prefix = prefix
        self.flush_every = flush_every
        self.op_timeout = op_timeout
        self.healthy = True
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        tracker.pending = {}
        tracker.shared = self

    def _key(self, objective: str, width: float, index: int) -> str:
        return f"{self.prefix}slo:{objective}:{'m' if width == MINUTE else 'h'}:{index}"

    async def flush(self) -> bool:
        """Add this node's pending counts to the cluster's buckets; False if Redis failed (the
        counts stay pending)."""
        async with self._lock:
            pending = self.tracker.pending
            if not pending:
                return True
            self.tracker.pending = {}
            windows = {o.name: max(o.window, 3 * DAY) for o in self.tracker.objectives}
            try:
                async with asyncio.timeout(self.op_timeout):
                    pipe = self.redis.pipeline(transaction=False)
                    pipe.set(f"{self.prefix}slo:since", repr(self.tracker.started), nx=True)
                    for (name, minute), (good, total) in pending.items():
                        hour = int(minute * MINUTE // HOUR)
                        for width, index, keep in (
                            (MINUTE, minute, MINUTE_SPAN + 2 * MINUTE),
                            (HOUR, hour, windows.get(name, 3 * DAY) + 2 * HOUR),
                        ):
                            key = self._key(name, width, index)
                            pipe.hincrby(key, "g", good)
                            pipe.hincrby(key, "t", total)
                            pipe.expire(key, int(keep))
                    await pipe.execute()
            except Exception as exc:  # redis away: keep the counts for the next flush
                self._unavailable(exc)
                self._keep(pending)
                return False
            self._back()
            return True

    def _keep(self, pending: dict[tuple[str, int], list[int]]) -> None:
        """Put unflushed counts back (a failed pipeline may have added some: counted twice
        rather than lost), dropping minutes past ``MAX_PENDING``."""
        merged = self.tracker.pending if self.tracker.pending is not None else {}
        for key, (good, total) in pending.items():
            cell = merged.setdefault(key, [0, 0])
            cell[0] += good
            cell[1] += total
        newest = max((minute for _, minute in merged), default=0)
        self.tracker.pending = {k: v for k, v in merged.items() if k[1] > newest - MAX_PENDING}

    async def report(self) -> list[dict[str, Any]] | None:
        """The objectives over the cluster's counts (this node's flushed first); None when
        Redis cannot be read."""
        await self.flush()
        now = self.tracker.now()
        plan: list[tuple[str, float, int]] = []
        for objective in self.tracker.objectives:
            for width, span in (
                (MINUTE, MINUTE_SPAN),
                (HOUR, max(objective.window, 3 * DAY)),
            ):
                current = int(now // width)
                for index in range(current - math.ceil(span / width), current + 1):
                    plan.append((objective.name, width, index))
        try:
            async with asyncio.timeout(self.op_timeout):
                pipe = self.redis.pipeline(transaction=False)
                pipe.get(f"{self.prefix}slo:since")
                for name, width, index in plan:
                    pipe.hmget(self._key(name, width, index), "g", "t")
                replies = await pipe.execute()
        except Exception as exc:
            self._unavailable(exc)
            return None
        self._back()
        cells: dict[str, dict[tuple[float, int], tuple[int, int]]] = {}
        for (name, width, index), (good, total) in zip(plan, replies[1:], strict=True):
            if total is not None:
                cells.setdefault(name, {})[(width, index)] = (int(good or 0), int(total))
        counts = {o.name: _Buckets(cells.get(o.name, {})) for o in self.tracker.objectives}
        since = float(replies[0]) if replies[0] is not None else self.tracker.started
        return self.tracker.report(counts, since=since)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._flushing(), name="slo-flush")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        with contextlib.suppress(Exception):
            await self.flush()  # the last counts of a node that stops

    async def _flushing(self) -> None:
        while True:
            await asyncio.sleep(self.flush_every)
            await self.flush()

    def _unavailable(self, error: BaseException) -> None:
        if self.healthy:
            log.warning("slo_redis_unavailable", error=type(error).__name__)
        self.healthy = False

    def _back(self) -> None:
        if not self.healthy:
            log.info("slo_redis_back")
        self.healthy = True
