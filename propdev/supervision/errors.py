"""Errors of the supervision tree."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from propdev.supervision.strategy import RestartIntensity


class SupervisionError(Exception):
    """Base class of supervision errors."""


class EscalationError(SupervisionError):
    """Raised when a supervisor's children fail more often than its restart intensity allows.

    The supervisor stops its subtree and reports this error to its parent, which treats it
    as the failure of one child. A root supervisor records it and reports it instead.
    """

    def __init__(
        self,
        supervisor: str,
        child: str,
        cause: BaseException,
        intensity: RestartIntensity,
    ) -> None:
        super().__init__(
            f"supervisor {supervisor!r} exceeded {intensity.intensity} restarts in "
            f"{intensity.period:g}s (last failure: child {child!r}: {cause!r})"
        )
        self.supervisor = supervisor
        self.child = child
        self.cause = cause
        self.intensity = intensity


class SupervisorStoppedError(SupervisionError):
    """Raised when a child is added to a supervisor that is not running."""


class ChildNotFoundError(SupervisionError, KeyError):
    """Raised when a supervisor has no child with the given id."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""
