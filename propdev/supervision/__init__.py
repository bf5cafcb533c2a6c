"""Supervision: OTP restart strategies, supervisors, the node tree and dead letters.

Independent of the actor runtime: a supervisor drives anything that follows the `Child`
protocol; `propdev.actors` provides the actor cells that do.
"""

from __future__ import annotations

from propdev.supervision.deadletters import DeadLetter, DeadLetters
from propdev.supervision.errors import (
    ChildNotFoundError,
    EscalationError,
    SupervisionError,
    SupervisorStoppedError,
)
from propdev.supervision.spec import Child, ChildSpec, Parent
from propdev.supervision.strategy import (
    Backoff,
    Restart,
    RestartIntensity,
    RestartStrategy,
    RestartWindow,
    restart_scope,
)
from propdev.supervision.supervisor import Supervisor, SupervisorState
from propdev.supervision.tree import SupervisionTree

__all__ = (
    "Backoff",
    "Child",
    "ChildNotFoundError",
    "ChildSpec",
    "DeadLetter",
    "DeadLetters",
    "EscalationError",
    "Parent",
    "Restart",
    "RestartIntensity",
    "RestartStrategy",
    "RestartWindow",
    "SupervisionError",
    "SupervisionTree",
    "Supervisor",
    "SupervisorState",
    "SupervisorStoppedError",
    "restart_scope",
)
