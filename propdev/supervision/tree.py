"""The supervision tree of one node: node root -> supervisors -> actors."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import structlog

from propdev.supervision.errors import EscalationError
from propdev.supervision.spec import ChildSpec
from propdev.supervision.strategy import Backoff, Restart, RestartIntensity, RestartStrategy
from propdev.supervision.supervisor import Clock, Sleep, Supervisor

log = structlog.get_logger()

DEFAULT_ROOT_INTENSITY = RestartIntensity(intensity=3, period=60.0)


class SupervisionTree:
    """A node's root supervisor and what hangs under it.

    The root never exits the process. Past its own intensity it stops its subtree,
    records itself as failed (`failed`, `failure`) and calls `on_failed`, so that a
    readiness probe can report the node as not ready.
    """

    def __init__(
        self,
        node_id: str,
        *,
        strategy: RestartStrategy = RestartStrategy.ONE_FOR_ONE,
        intensity: RestartIntensity = DEFAULT_ROOT_INTENSITY,
        backoff: Backoff | None = None,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
        on_failed: Callable[[EscalationError], None] | None = None,
    ) -> None:
        self.node_id = node_id
        self._on_failed = on_failed
        self.root = Supervisor(
            node_id,
            strategy=strategy,
            intensity=intensity,
            backoff=backoff,
            clock=clock,
            sleep=sleep,
            on_escalate=self._root_failed,
        )

    @property
    def failed(self) -> bool:
        return self.root.crashed

    @property
    def failure(self) -> EscalationError | None:
        return self.root.failure

    async def start(self) -> None:
        await self.root.start()

    async def stop(self) -> None:
        await self.root.stop()

    async def settle(self) -> None:
        """Wait until no supervisor of the tree has a failure left to handle.

        Escalation and restarts run in the supervisors' own tasks; this is how a caller
        (a test, a shutdown) waits for them without sleeping.
        """
        await self.root.settle()

    async def add(self, supervisor: Supervisor, *, restart: Restart = Restart.PERMANENT) -> None:
        """Hang `supervisor` under the root (started now if the root runs)."""
        await self.root.start_child(
            ChildSpec(id=supervisor.id, start=lambda: supervisor, restart=restart, shutdown=None)
        )

    def supervisor(self, supervisor_id: str) -> Supervisor:
        child = self.root.child(supervisor_id)
        if not isinstance(child, Supervisor):
            raise TypeError(f"{supervisor_id!r} is not a supervisor")
        return child

    def snapshot(self, *, max_actors: int | None = None) -> dict[str, Any]:
        """The tree as JSON-serialisable data, for `/admin/api/v1/actors`."""
        root = self.root.snapshot(max_actors=max_actors)
        return {
            "node": self.node_id,
            "state": root["state"],
            "failed": self.failed,
            "failure": root["failure"],
            "strategy": root["strategy"],
            "intensity": root["intensity"],
            "restarts": root["child_restarts"],
            "supervisors": root["supervisors"],
            "actors": root["actors"],
        }

    def _root_failed(self, error: EscalationError) -> None:
        log.critical("supervision_tree_failed", node=self.node_id, error=str(error))
        if self._on_failed is not None:
            self._on_failed(error)
