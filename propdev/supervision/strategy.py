"""Restart strategies, restart types, restart intensity and backoff, in OTP's vocabulary.

Everything here is pure: no event loop, no clock of its own.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import TypeVar

T = TypeVar("T")


class RestartStrategy(StrEnum):
    """Which children a supervisor restarts when one of them fails."""

    ONE_FOR_ONE = "one_for_one"
    """Only the failed child."""
    ONE_FOR_ALL = "one_for_all"
    """Every child: the others are stopped in reverse order, then all start in order."""
    REST_FOR_ONE = "rest_for_one"
    """The failed child and the children started after it."""


class Restart(StrEnum):
    """When a child is restarted."""

    PERMANENT = "permanent"
    """Always restarted."""
    TRANSIENT = "transient"
    """Restarted after a failure, not after a normal stop (passivation)."""
    TEMPORARY = "temporary"
    """Never restarted: a failure removes it."""


def restart_scope(strategy: RestartStrategy, children: Sequence[T], failed: T) -> list[T]:
    """Return the children to restart, in start order, when `failed` fails.

    `children` is in start order. Raises ValueError when `failed` is not among them.
    """
    index = children.index(failed)
    if strategy is RestartStrategy.ONE_FOR_ONE:
        return [failed]
    if strategy is RestartStrategy.ONE_FOR_ALL:
        return list(children)
    if strategy is RestartStrategy.REST_FOR_ONE:
        return list(children[index:])
    raise ValueError(f"unknown restart strategy: {strategy!r}")


@dataclass(frozen=True, slots=True)
class RestartIntensity:
    """At most `intensity` restarts within `period` seconds; one more escalates."""

    intensity: int = 3
    period: float = 5.0

    def __post_init__(self) -> None:
        if self.intensity < 0:
            raise ValueError(f"intensity must be >= 0, got {self.intensity}")
        if self.period <= 0:
            raise ValueError(f"period must be > 0, got {self.period}")

    def as_dict(self) -> dict[str, float]:
        return {"intensity": self.intensity, "period": self.period}


class RestartWindow:
    """The sliding window that counts restarts against a `RestartIntensity`."""

    __slots__ = ("_times", "limit")

    def __init__(self, limit: RestartIntensity) -> None:
        self.limit = limit
        self._times: deque[float] = deque()

    def __len__(self) -> int:
        return len(self._times)

    def record(self, now: float) -> bool:
        """Count one restart at `now`; return False when that exceeds the intensity."""
        times = self._times
        horizon = now - self.limit.period
        while times and times[0] <= horizon:
            times.popleft()
        times.append(now)
        return len(times) <= self.limit.intensity

    def reset(self) -> None:
        self._times.clear()


@dataclass(frozen=True, slots=True)
class Backoff:
    """Exponential delay before a restart: `initial * factor ** (n - 1)`, capped at `maximum`.

    `n` is the number of restarts currently in the supervisor's window, so a child that
    keeps failing waits longer each time and a calm supervisor restarts at once.
    """

    initial: float = 0.01
    factor: float = 2.0
    maximum: float = 1.0

    def delay(self, n: int) -> float:
        if n <= 0 or self.initial <= 0:
            return 0.0
        return float(min(self.maximum, self.initial * self.factor ** min(n - 1, 64)))
