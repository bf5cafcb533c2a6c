"""Service level objectives per integration, measured by the node itself.

An objective is an SLI over the requests of some routes — *availability* (good: answered
without a 5xx) or *latency* (good: answered within ``threshold`` seconds) — and a target over
a window (30 days by default). ``SloTracker.record`` counts each answered request into the
objectives whose routes match it; ``SloTracker.report`` gives, per objective, the SLI over the
window, the error budget left and the burn rates of the Google SRE workbook's multi-window
alerts: burn rate = error ratio / (1 - target), paged when both windows of a pair exceed:

    page    1 h  and 5 min  at 14.4   (2 % of a 30-day budget in an hour)
    page    6 h  and 30 min at 6      (5 % in six hours)
    ticket  3 d  and 6 h    at 1      (10 % in three days)

Memory is bounded: each objective keeps a ring of one-minute buckets over 6 hours (the 5 min,
30 min, 1 h and 6 h windows) and a ring of one-hour buckets over its window (3 d, 30 d). A
window is summed over whole buckets, the current one included, so it is exact to one bucket.
Counts live in memory since the node started. In a cluster each node also adds its counts,
every few seconds, to per-minute and per-hour buckets in the cluster's Redis
(``propdev.observability.slo_shared``), and the report is the cluster's, from those buckets:
exact to one bucket and to each node's last flush. Prometheus, with the rules ``rules.py``
generates from the same objectives, is the durable view across restarts.

Defaults are in ``DEFAULT_OBJECTIVES``; ``PROPDEV_SLO_FILE`` names a TOML file that changes
them or adds more (``load_objectives``).
"""

from __future__ import annotations

import dataclasses
import math
import time
import tomllib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

from propdev.observability.metrics import LATENCY_BUCKETS

SliKind = Literal["availability", "latency"]

DAY = 86400.0
MINUTE_SPAN = 6 * 3600.0

BURN_WINDOWS: tuple[tuple[str, float], ...] = (
    ("5m", 300.0),
    ("30m", 1800.0),
    ("1h", 3600.0),
    ("6h", 6 * 3600.0),
    ("3d", 3 * DAY),
)


@dataclass(frozen=True, slots=True)
class BurnAlert:
    """A multi-window burn-rate alert: fires when both windows burn faster than ``rate``."""

    name: str
    severity: Literal["page", "ticket"]
    long_window: str
    short_window: str
    rate: float


BURN_ALERTS = (
    BurnAlert("fast_burn", "page", "1h", "5m", 14.4),
    BurnAlert("slow_burn", "page", "6h", "30m", 6.0),
    BurnAlert("steady_burn", "ticket", "3d", "6h", 1.0),
)


class SloConfigError(ValueError):
    """Raised when an objective (default or from ``PROPDEV_SLO_FILE``) is invalid."""


@dataclass(frozen=True, slots=True)
class RouteMatch:
    """``"POST /api/v1/access-points/{id}/open"``: a method (``*`` any) and a route template,
    exact or, ending in ``*``, a prefix."""

    method: str | None
    route: str
    prefix: bool

    @classmethod
    def parse(cls, spec: str) -> RouteMatch:
        method, _, route = spec.strip().partition(" ")
        route = route.strip()
        if not method or not route.startswith("/"):
            raise SloConfigError(f"route {spec!r}: expected 'METHOD /route/template' ('*' = any)")
        prefix = route.endswith("*")
        method = method.upper()
        path = route.rstrip("*") if prefix else route
        return cls(None if method == "*" else method, path, prefix)

    def matches(self, method: str, route: str) -> bool:
        if self.method is not None and method != self.method:
            return False
        return route.startswith(self.route) if self.prefix else route == self.route

    def __str__(self) -> str:
        return f"{self.method or '*'} {self.route}{'*' if self.prefix else ''}"


@dataclass(frozen=True, slots=True)
class Objective:
    """One SLO: ``target`` of the ``routes``' requests are good over ``window`` seconds."""

    name: str
    integration: str
    sli: SliKind
    target: float
    routes: tuple[RouteMatch, ...]
    window: float = 30 * DAY
    threshold: float | None = None
    description: str = ""

    def __post_init__(self) -> None:
        if not self.name.replace("_", "").isalnum() or not self.name.islower():
            raise SloConfigError(f"objective {self.name!r}: name must be lower_snake_case")
        if self.sli not in ("availability", "latency"):
            raise SloConfigError(f"objective {self.name}: sli must be availability or latency")
        if not 0.0 < self.target < 1.0:
            raise SloConfigError(f"objective {self.name}: target must be between 0 and 1")
        if not self.routes:
            raise SloConfigError(f"objective {self.name}: needs at least one route")
        if not 3 * DAY <= self.window <= 90 * DAY:
            raise SloConfigError(f"objective {self.name}: window must be 3 to 90 days")
        if self.sli == "latency" and self.threshold not in LATENCY_BUCKETS:
            raise SloConfigError(
                f"objective {self.name}: threshold_seconds must be one of the latency "
                f"histogram's buckets {LATENCY_BUCKETS}"
            )

    @property
    def budget(self) -> float:
        """The error budget: the fraction of requests allowed to be bad."""
        return 1.0 - self.target

    def matches(self, method: str, route: str) -> bool:
        return any(r.matches(method, route) for r in self.routes)

    def good(self, status: int, seconds: float) -> bool:
        if self.sli == "availability":
            return status < 500
        assert self.threshold is not None
        return seconds <= self.threshold


DEFAULT_OBJECTIVES: tuple[Objective, ...] = (
    Objective(
        "door_opens_availability",
        "door_opens",
        "availability",
        0.999,
        (RouteMatch.parse("POST /api/v1/access-points/{id}/open"),),
        description="Door and barrier opens answered without a server error (5xx).",
    ),
    Objective(
        "door_opens_latency",
        "door_opens",
        "latency",
        0.99,
        (RouteMatch.parse("POST /api/v1/access-points/{id}/open"),),
        threshold=2.0,
        description="Door and barrier opens answered within 2 s.",
    ),
    Objective(
        "partner_callbacks_availability",
        "partner_callbacks",
        "availability",
        0.999,
        (RouteMatch.parse("POST /partner/v1/events"),),
        description="Partner event callbacks accepted or refused without a server error.",
    ),
    Objective(
        "partner_callbacks_latency",
        "partner_callbacks",
        "latency",
        0.99,
        (RouteMatch.parse("POST /partner/v1/events"),),
        threshold=1.0,
        description="Partner event callbacks answered within 1 s.",
    ),
    Objective(
        "utilities_gateway_availability",
        "utilities_gateway",
        "availability",
        0.995,
        (RouteMatch.parse("* /gateway/v1/*"),),
        description="Utilities gateway calls answered without a server error.",
    ),
    Objective(
        "utilities_gateway_latency",
        "utilities_gateway",
        "latency",
        0.99,
        (RouteMatch.parse("* /gateway/v1/*"),),
        threshold=3.0,
        description="Utilities gateway calls answered within 3 s.",
    ),
)

_FILE_KEYS = {
    "integration",
    "sli",
    "objective",
    "routes",
    "window_days",
    "threshold_seconds",
    "description",
}


def load_objectives(path: Path | None) -> tuple[Objective, ...]:
    """The defaults, changed or extended by the TOML file at ``path`` (one table per name).

    ``[door_opens_availability] objective = 0.9995`` changes one field of a default;
    a new name needs ``integration``, ``sli``, ``objective``, ``routes`` (and
    ``threshold_seconds`` for latency).
    """
    if path is None:
        return DEFAULT_OBJECTIVES
    try:
        with open(path, "rb") as fh:
            table = tomllib.load(fh)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise SloConfigError(f"PROPDEV_SLO_FILE={str(path)!r}: {exc}") from None
    try:
        return merge_objectives(DEFAULT_OBJECTIVES, table)
    except SloConfigError as exc:
        raise SloConfigError(f"PROPDEV_SLO_FILE={str(path)!r}: {exc}") from None


def merge_objectives(
    defaults: Sequence[Objective], table: Mapping[str, Any]
) -> tuple[Objective, ...]:
    by_name = {o.name: o for o in defaults}
    for name, raw in table.items():
        if not isinstance(raw, dict):
            raise SloConfigError(f"[{name}] must be a table")
        unknown = set(raw) - _FILE_KEYS
        if unknown:
            raise SloConfigError(f"[{name}] unknown keys {sorted(unknown)}")
        fields: dict[str, Any] = {}
        try:
            if "integration" in raw:
                fields["integration"] = str(raw["integration"])
            if "sli" in raw:
                fields["sli"] = str(raw["sli"])
            if "objective" in raw:
                fields["target"] = float(raw["objective"])
            if "routes" in raw:
                routes = raw["routes"]
                if not isinstance(routes, list):
                    raise SloConfigError(f"[{name}] routes must be a list of 'METHOD /route'")
                fields["routes"] = tuple(RouteMatch.parse(str(r)) for r in routes)
            if "window_days" in raw:
                fields["window"] = float(raw["window_days"]) * DAY
            if "threshold_seconds" in raw:
                fields["threshold"] = float(raw["threshold_seconds"])
            if "description" in raw:
                fields["description"] = str(raw["description"])
        except (TypeError, ValueError) as exc:
            if isinstance(exc, SloConfigError):
                raise
            raise SloConfigError(f"[{name}] {exc}") from None
        if name in by_name:
            by_name[name] = dataclasses.replace(by_name[name], **fields)
            continue
        missing = {"integration", "sli", "target", "routes"} - set(fields)
        if missing:
            raise SloConfigError(f"[{name}] a new objective needs {sorted(missing)}")
        by_name[name] = Objective(name=name, **fields)
    return tuple(by_name.values())


class _Ring:
    """Good and total counts in ``size`` buckets of ``width`` seconds, reused in a ring."""

    __slots__ = ("good", "size", "stamp", "total", "width")

    def __init__(self, width: float, span: float) -> None:
        self.width = width
        self.size = math.ceil(span / width) + 1
        self.stamp = [-1] * self.size
        self.good = [0] * self.size
        self.total = [0] * self.size

    def add(self, now: float, good: bool) -> None:
        index = int(now // self.width)
        slot = index % self.size
        if self.stamp[slot] != index:
            self.stamp[slot] = index
            self.good[slot] = 0
            self.total[slot] = 0
        self.total[slot] += 1
        if good:
            self.good[slot] += 1

    def covers(self, span: float) -> bool:
        return math.ceil(span / self.width) < self.size

    def sum(self, now: float, span: float) -> tuple[int, int]:
        current = int(now // self.width)
        good = total = 0
        for index in range(current - math.ceil(span / self.width) + 1, current + 1):
            slot = index % self.size
            if self.stamp[slot] == index:
                good += self.good[slot]
                total += self.total[slot]
        return good, total


class WindowedCounter:
    """Good/total events over sliding windows up to ``longest`` seconds, in bounded memory."""

    __slots__ = ("_rings",)

    def __init__(self, longest: float) -> None:
        self._rings = (_Ring(60.0, MINUTE_SPAN), _Ring(3600.0, max(longest, 3 * DAY)))

    def add(self, now: float, good: bool) -> None:
        for ring in self._rings:
            ring.add(now, good)

    def window(self, now: float, span: float) -> tuple[int, int]:
        """(good, total) over the last ``span`` seconds (whole buckets, the current included)."""
        for ring in self._rings:
            if ring.covers(span):
                return ring.sum(now, span)
        raise ValueError(f"no ring covers {span}s")


class Counts(Protocol):
    """Good/total over a window: a node's ``WindowedCounter``, or the cluster's buckets."""

    def window(self, now: float, span: float) -> tuple[int, int]: ...


class SharedReport(Protocol):
    """The cluster's report (``propdev.observability.slo_shared.RedisSlo``)."""

    async def report(self) -> list[dict[str, Any]] | None:
        """The objectives over the cluster's counts; None when they cannot be read."""
        ...


class SloTracker:
    """Counts answered requests into the objectives they belong to; reports the SLOs.

    ``pending`` (set by a shared store) collects this node's counts per objective and minute
    until they are flushed to the cluster's; ``shared`` gives the cluster's report."""

    def __init__(
        self, objectives: Iterable[Objective], *, clock: Callable[[], float] = time.time
    ) -> None:
        self.objectives = tuple(objectives)
        self._clock = clock
        self._counters = {o.name: WindowedCounter(o.window) for o in self.objectives}
        self._by_route: dict[tuple[str, str], tuple[tuple[Objective, WindowedCounter], ...]] = {}
        self.started = clock()
        self.pending: dict[tuple[str, int], list[int]] | None = None
        self.shared: SharedReport | None = None

    def now(self) -> float:
        return self._clock()

    def record(self, method: str, route: str, status: int, seconds: float) -> None:
        """Count one answered request (``method`` bounded, ``route`` a template)."""
        matched = self._by_route.get((method, route))
        if matched is None:
            matched = tuple(
                (o, self._counters[o.name]) for o in self.objectives if o.matches(method, route)
            )
            self._by_route[(method, route)] = matched
        if matched:
            now = self._clock()
            pending = self.pending
            for objective, counter in matched:
                good = objective.good(status, seconds)
                counter.add(now, good)
                if pending is not None:
                    cell = pending.setdefault((objective.name, int(now // 60.0)), [0, 0])
                    cell[0] += good
                    cell[1] += 1

    def report(
        self, counts: Mapping[str, Counts] | None = None, *, since: float | None = None
    ) -> list[dict[str, Any]]:
        """The objectives over this node's counts, or over ``counts`` (by objective name)."""
        now = self._clock()
        source: Mapping[str, Counts] = self._counters if counts is None else counts
        started = self.started if since is None else since
        return [self._report(o, now, source[o.name], started) for o in self.objectives]

    async def current(self) -> tuple[str, list[dict[str, Any]]]:
        """``("cluster", report)`` when the cluster's counts can be read, else this node's."""
        if self.shared is not None:
            shared = await self.shared.report()
            if shared is not None:
                return "cluster", shared
        return "node", self.report()

    def _report(
        self, objective: Objective, now: float, counter: Counts, started: float
    ) -> dict[str, Any]:
        good, total = counter.window(now, objective.window)
        bad = total - good
        spent = (bad / total) / objective.budget if total else 0.0
        burn_rates = {}
        for label, span in BURN_WINDOWS:
            g, t = counter.window(now, span)
            burn_rates[label] = ((t - g) / t) / objective.budget if t else 0.0
        return {
            "name": objective.name,
            "integration": objective.integration,
            "sli_kind": objective.sli,
            "description": objective.description,
            "routes": [str(r) for r in objective.routes],
            "objective": objective.target,
            "threshold_seconds": objective.threshold,
            "window_seconds": objective.window,
            "measured_since": started,
            "good": good,
            "total": total,
            "bad": bad,
            "sli": good / total if total else None,
            "error_budget": {
                "allowed_bad_ratio": objective.budget,
                "allowed_bad_events": objective.budget * total,
                "spent_ratio": spent,
                "remaining_ratio": 1.0 - spent,
            },
            "burn_rates": burn_rates,
            "alerts": [
                {
                    "name": alert.name,
                    "severity": alert.severity,
                    "long_window": alert.long_window,
                    "short_window": alert.short_window,
                    "burn_rate_threshold": alert.rate,
                    "firing": burn_rates[alert.long_window] > alert.rate
                    and burn_rates[alert.short_window] > alert.rate,
                }
                for alert in BURN_ALERTS
            ],
        }
