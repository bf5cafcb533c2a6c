"""ChildSpec and the contract between a supervisor and what it supervises."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from propdev.supervision.strategy import Restart


class Parent(Protocol):
    """What a child reports its failures to."""

    def child_failed(self, child_id: str, exc: BaseException) -> None:
        """Called, without awaiting, by a child that crashed and now waits to be restarted."""
        ...


class Child(Protocol):
    """What a supervisor starts, stops and restarts: an actor cell or another supervisor.

    A child is built once by its spec's `start`; a restart stops and starts that same
    object again, so an actor keeps its address and mailbox across restarts.
    """

    parent: Parent | None
    restarts: int

    @property
    def id(self) -> str: ...

    @property
    def crashed(self) -> bool:
        """True while the child has failed and waits for its supervisor."""
        ...

    async def start(self) -> None:
        """Start (or restart) the child; returns when its start hook has run."""
        ...

    async def stop(self, shutdown: float | None = None) -> None:
        """Stop gracefully, waiting at most `shutdown` seconds before killing it."""
        ...

    def close(self) -> None:
        """Release the child for good once stopped (fails what is still queued)."""
        ...

    def snapshot(self) -> dict[str, Any]:
        """A JSON-serialisable description for the admin API."""
        ...


@dataclass(frozen=True, slots=True)
class ChildSpec:
    """How a supervisor builds and treats one static child (OTP's child specification).

    `start` builds the child (not yet started); `restart` says when it is restarted;
    `shutdown` is how many seconds a graceful stop may take before the child is killed
    (None waits forever, as OTP does for supervisors).
    """

    id: str
    start: Callable[[], Child]
    restart: Restart = Restart.PERMANENT
    shutdown: float | None = 5.0
