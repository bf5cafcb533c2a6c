"""Dead letters: messages that could not be delivered, kept and listable, never retried."""

from __future__ import annotations

import time
from collections import Counter, deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import structlog

log = structlog.get_logger()

_REPR_LIMIT = 500


def _short_repr(value: object) -> str:
    try:
        text = repr(value)
    except Exception as exc:  # a broken __repr__ must not lose the dead letter
        text = f"<unrepresentable {type(value).__name__}: {exc!r}>"
    return text if len(text) <= _REPR_LIMIT else text[: _REPR_LIMIT - 3] + "..."


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One undeliverable message: where it went, what it was, why it failed, when."""

    address: str
    message: str
    error: str
    at: float
    attempts: int

    @property
    def kind(self) -> str:
        return self.address.partition(":")[0]

    def as_dict(self) -> dict[str, Any]:
        return {
            "address": self.address,
            "message": self.message,
            "error": self.error,
            "at": self.at,
            "attempts": self.attempts,
        }


class DeadLetters:
    """The most recent `capacity` dead letters, with a total count per kind."""

    __slots__ = ("_by_kind", "_clock", "_entries")

    def __init__(self, capacity: int = 1000, *, clock: Callable[[], float] = time.time) -> None:
        self._entries: deque[DeadLetter] = deque(maxlen=capacity)
        self._by_kind: Counter[str] = Counter()
        self._clock = clock

    def record(
        self, address: str, message: object, error: BaseException | str, attempts: int
    ) -> DeadLetter:
        entry = DeadLetter(
            address=address,
            message=_short_repr(message),
            error=error if isinstance(error, str) else _short_repr(error),
            at=self._clock(),
            attempts=attempts,
        )
        self._entries.append(entry)
        self._by_kind[entry.kind] += 1
        log.error(
            "message_dead_lettered",
            actor=address,
            message=entry.message,
            error=entry.error,
            attempts=attempts,
        )
        return entry

    def __iter__(self) -> Iterator[DeadLetter]:
        return iter(tuple(self._entries))

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def total(self) -> int:
        """How many were ever recorded, including those no longer kept."""
        return sum(self._by_kind.values())

    def by_kind(self) -> dict[str, int]:
        return dict(self._by_kind)

    def snapshot(self) -> list[dict[str, Any]]:
        return [entry.as_dict() for entry in self._entries]

    def clear(self) -> None:
        self._entries.clear()
