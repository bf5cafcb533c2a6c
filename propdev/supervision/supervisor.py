"""Supervisor: starts children in order, stops them in reverse, restarts them, escalates."""

from __future__ import annotations

import asyncio
import contextvars
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from enum import StrEnum
from typing import Any

import structlog

from propdev.supervision.errors import (
    ChildNotFoundError,
    EscalationError,
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

log = structlog.get_logger()

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]

_STOP_BATCH = 512


class SupervisorState(StrEnum):
    """Where a supervisor is in its life."""

    IDLE = "idle"
    STARTING = "starting"
    RUNNING = "running"
    STOPPING = "stopping"
    STOPPED = "stopped"
    FAILED = "failed"
    """Escalated: its subtree is stopped and its parent (if any) decides what comes next."""


class _Request:
    """One unit of a supervisor's work: a child's failure or an operator's restart."""

    __slots__ = ("child_id", "done", "error")

    def __init__(
        self, child_id: str, error: BaseException | None, done: asyncio.Future[None] | None
    ) -> None:
        self.child_id = child_id
        self.error = error
        self.done = done


class Supervisor:
    """Supervises static children (`ChildSpec`) and dynamic ones (`attach`).

    Static children start in order at `start()` and stop in reverse at `stop()`. Dynamic
    children (virtual actors) are attached while running, restarted as `dynamic_restart`
    says, and on `stop()` they are stopped concurrently and released.

    Failures are reported with `child_failed()` and handled one at a time in a task of the
    supervisor's own, which exists only while there is work. Each restart counts against
    `intensity`; past it the supervisor escalates: it stops its subtree, records an
    `EscalationError`, and reports it to its parent, or (a root) to `on_escalate`.
    A supervisor is itself a `Child`, so supervisors nest.
    """

    def __init__(
        self,
        id: str,
        children: Iterable[ChildSpec] = (),
        *,
        strategy: RestartStrategy = RestartStrategy.ONE_FOR_ONE,
        intensity: RestartIntensity | None = None,
        backoff: Backoff | None = None,
        dynamic_restart: Restart = Restart.TRANSIENT,
        dynamic_shutdown: float | None = 5.0,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
        on_escalate: Callable[[EscalationError], None] | None = None,
    ) -> None:
        self._id = id
        self.strategy = strategy
        self.intensity = intensity if intensity is not None else RestartIntensity()
        self.backoff = backoff if backoff is not None else Backoff()
        self.dynamic_restart = dynamic_restart
        self.dynamic_shutdown = dynamic_shutdown
        self.parent: Parent | None = None
        self.restarts = 0
        """How often this supervisor was restarted by its parent."""
        self.child_restarts = 0
        """How many child restarts this supervisor performed."""
        self.state = SupervisorState.IDLE
        self.failure: EscalationError | None = None
        self._clock = clock
        self._sleep = sleep
        self._on_escalate = on_escalate
        self._window = RestartWindow(self.intensity)
        self._specs: dict[str, ChildSpec] = {}
        self._children: dict[str, Child] = {}
        self._requests: deque[_Request] = deque()
        self._task: asyncio.Task[None] | None = None
        for spec in children:
            self._add_spec(spec)

    def __repr__(self) -> str:
        return f"<Supervisor {self._id!r} {self.strategy} {self.state}>"

    # -- Child protocol -------------------------------------------------------------------

    @property
    def id(self) -> str:
        return self._id

    @property
    def crashed(self) -> bool:
        return self.state is SupervisorState.FAILED

    @property
    def running(self) -> bool:
        return self.state is SupervisorState.RUNNING

    async def start(self) -> None:
        """Start the static children in order (restarting a stopped or failed supervisor)."""
        if self.state is SupervisorState.RUNNING:
            return
        self.state = SupervisorState.STARTING
        self.failure = None
        self._window.reset()
        self._requests.clear()
        for spec in list(self._specs.values()):
            await self._start_static(spec)
        if self.state is SupervisorState.STARTING:
            self.state = SupervisorState.RUNNING

    async def stop(self, shutdown: float | None = None) -> None:
        """Stop every child: dynamic ones concurrently, then static ones in reverse order.

        `shutdown` is ignored: each child has its own shutdown time.
        """
        if self.state in (SupervisorState.STOPPED, SupervisorState.IDLE):
            self.state = SupervisorState.STOPPED
            return
        self.state = SupervisorState.STOPPING
        await self._cancel_work()
        await self._stop_children()
        self.state = SupervisorState.STOPPED

    def close(self) -> None:
        for child in list(self._children.values()):
            child.close()
        self._children.clear()
        self.state = SupervisorState.STOPPED

    # -- children -------------------------------------------------------------------------

    def children(self) -> list[Child]:
        """The children in start order."""
        return list(self._children.values())

    def child(self, child_id: str) -> Child:
        try:
            return self._children[child_id]
        except KeyError:
            raise ChildNotFoundError(f"{self._id!r} has no child {child_id!r}") from None

    def __len__(self) -> int:
        return len(self._children)

    def __contains__(self, child_id: object) -> bool:
        return child_id in self._children

    def add_child(self, spec: ChildSpec) -> None:
        """Add a static child that `start()` will start with the others, in order."""
        if self.state in (SupervisorState.STARTING, SupervisorState.RUNNING):
            raise SupervisorStoppedError(f"supervisor {self._id!r} runs: use start_child()")
        self._add_spec(spec)

    async def start_child(self, spec: ChildSpec) -> Child:
        """Add a static child and start it now (if this supervisor runs)."""
        self._add_spec(spec)
        if self.state is SupervisorState.RUNNING:
            return await self._start_static(spec)
        return self._build(spec)

    async def terminate_child(self, child_id: str) -> None:
        """Stop a child and forget it."""
        child = self.child(child_id)
        spec = self._specs.pop(child_id, None)
        await child.stop(spec.shutdown if spec is not None else self.dynamic_shutdown)
        self._children.pop(child_id, None)
        child.close()

    def attach(self, child: Child) -> None:
        """Adopt a dynamic child that starts itself (a virtual actor's cell)."""
        if self.state is not SupervisorState.RUNNING:
            raise SupervisorStoppedError(f"supervisor {self._id!r} is {self.state}")
        child.parent = self
        self._children[child.id] = child

    def detach(self, child_id: str) -> None:
        """Forget a dynamic child that stopped normally (a passivated actor)."""
        self._children.pop(child_id, None)

    # -- failures and restarts ------------------------------------------------------------

    def child_failed(self, child_id: str, exc: BaseException) -> None:
        """Record a child's failure; it is handled in this supervisor's own task."""
        self._submit(_Request(child_id, exc, None))

    async def restart_child(self, child_id: str) -> None:
        """Operator restart: stop the child gracefully and start it again.

        It does not count against the intensity and does not touch the siblings.
        """
        self.child(child_id)
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._submit(_Request(child_id, None, done))
        await done

    def _submit(self, request: _Request) -> None:
        self._requests.append(request)
        if self._task is None:
            # A fresh context: not the failing child's (its log bindings are not ours).
            self._task = asyncio.get_running_loop().create_task(
                self._work(), name=f"supervisor:{self._id}", context=contextvars.Context()
            )

    async def settle(self) -> None:
        """Wait until this supervisor and those below it have no failure left to handle."""
        while True:
            busy = [s._task for s in self._walk() if s._task is not None]
            if not busy:
                return
            await asyncio.wait(busy)

    def _walk(self) -> list[Supervisor]:
        found = [self]
        for child in list(self._children.values()):
            if isinstance(child, Supervisor):
                found.extend(child._walk())
        return found

    async def _work(self) -> None:
        try:
            while self._requests:
                request = self._requests.popleft()
                try:
                    if request.error is None:
                        await self._operator_restart(request.child_id)
                    else:
                        await self._handle_failure(request.child_id, request.error)
                except Exception as exc:
                    log.exception("supervisor_error", supervisor=self._id, child=request.child_id)
                    if request.done is not None and not request.done.done():
                        request.done.set_exception(exc)
                else:
                    if request.done is not None and not request.done.done():
                        request.done.set_result(None)
        finally:
            self._task = None

    async def _operator_restart(self, child_id: str) -> None:
        child = self.child(child_id)
        await child.stop(self._shutdown_of(child_id))
        child.restarts += 1
        self.child_restarts += 1
        log.warning("child_restarted", supervisor=self._id, child=child_id, reason="operator")
        await child.start()

    async def _handle_failure(self, child_id: str, exc: BaseException) -> None:
        child = self._children.get(child_id)
        if child is None or self.state is not SupervisorState.RUNNING or not child.crashed:
            return
        if self._restart_of(child_id) is Restart.TEMPORARY:
            log.warning("child_removed", supervisor=self._id, child=child_id, error=repr(exc))
            await child.stop(0)
            self._forget(child_id)
            child.close()
            return
        if not self._window.record(self._clock()):
            await self._escalate(child_id, exc)
            return
        if self.strategy is RestartStrategy.ONE_FOR_ONE:
            scope = [child_id]
        else:
            scope = restart_scope(self.strategy, list(self._children), child_id)
        for sibling_id in reversed(scope):
            if sibling_id != child_id:
                await self._children[sibling_id].stop(self._shutdown_of(sibling_id))
        delay = self.backoff.delay(len(self._window))
        if delay > 0:
            await self._sleep(delay)
        for restart_id in scope:
            restarted = self._children.get(restart_id)
            if restarted is None or self.state is not SupervisorState.RUNNING:
                continue
            if self._restart_of(restart_id) is Restart.TEMPORARY:
                self._forget(restart_id)
                restarted.close()
                continue
            restarted.restarts += 1
            self.child_restarts += 1
            log.warning(
                "child_restarted",
                supervisor=self._id,
                child=restart_id,
                restarts=restarted.restarts,
                reason=repr(exc) if restart_id == child_id else f"sibling {child_id} failed",
                delay=delay,
            )
            await restarted.start()

    async def _escalate(self, child_id: str, exc: BaseException) -> None:
        error = EscalationError(self._id, child_id, exc, self.intensity)
        log.error(
            "supervisor_escalated",
            supervisor=self._id,
            child=child_id,
            error=repr(exc),
            **self.intensity.as_dict(),
        )
        self.failure = error
        self.state = SupervisorState.STOPPING
        await self._stop_children()
        self.state = SupervisorState.FAILED
        if self.parent is not None:
            self.parent.child_failed(self._id, error)
        elif self._on_escalate is not None:
            self._on_escalate(error)

    # -- helpers --------------------------------------------------------------------------

    def _add_spec(self, spec: ChildSpec) -> None:
        if spec.id in self._specs or spec.id in self._children:
            raise ValueError(f"supervisor {self._id!r} already has a child {spec.id!r}")
        self._specs[spec.id] = spec

    def _build(self, spec: ChildSpec) -> Child:
        child = self._children.get(spec.id)
        if child is None:
            child = spec.start()
            if child.id != spec.id:
                raise ValueError(f"child spec {spec.id!r} built a child named {child.id!r}")
            child.parent = self
            self._children[spec.id] = child
        return child

    async def _start_static(self, spec: ChildSpec) -> Child:
        child = self._build(spec)
        await child.start()
        return child

    def _restart_of(self, child_id: str) -> Restart:
        spec = self._specs.get(child_id)
        return spec.restart if spec is not None else self.dynamic_restart

    def _shutdown_of(self, child_id: str) -> float | None:
        spec = self._specs.get(child_id)
        return spec.shutdown if spec is not None else self.dynamic_shutdown

    def _forget(self, child_id: str) -> None:
        self._children.pop(child_id, None)
        self._specs.pop(child_id, None)

    async def _cancel_work(self) -> None:
        task = self._task
        if task is not None and task is not asyncio.current_task():
            task.cancel()
            await asyncio.wait((task,))
        for request in self._requests:
            if request.done is not None and not request.done.done():
                request.done.set_exception(
                    SupervisorStoppedError(f"supervisor {self._id!r} stopped")
                )
        self._requests.clear()

    async def _stop_children(self) -> None:
        dynamic = [child for cid, child in self._children.items() if cid not in self._specs]
        for start in range(0, len(dynamic), _STOP_BATCH):
            batch = dynamic[start : start + _STOP_BATCH]
            results = await asyncio.gather(
                *(child.stop(self.dynamic_shutdown) for child in batch), return_exceptions=True
            )
            for child, result in zip(batch, results, strict=True):
                if isinstance(result, BaseException):
                    log.error("child_stop_failed", supervisor=self._id, child=child.id)
        for child in dynamic:
            self._children.pop(child.id, None)
            child.close()
        for child_id in reversed(list(self._specs)):
            static = self._children.get(child_id)
            if static is not None:
                await static.stop(self._specs[child_id].shutdown)

    def snapshot(self, *, max_actors: int | None = None) -> dict[str, Any]:
        """This supervisor, its child supervisors and (up to `max_actors` of) its actors."""
        supervisors: list[dict[str, Any]] = []
        actors: list[dict[str, Any]] = []
        for child in list(self._children.values()):
            if isinstance(child, Supervisor):
                supervisors.append(child.snapshot(max_actors=max_actors))
            elif max_actors is None or len(actors) < max_actors:
                actors.append(child.snapshot())
        return {
            "type": "supervisor",
            "id": self._id,
            "state": self.state.value,
            "strategy": self.strategy.value,
            "intensity": self.intensity.as_dict(),
            "restarts": self.restarts,
            "child_restarts": self.child_restarts,
            "failure": str(self.failure) if self.failure is not None else None,
            "children_total": len(self._children),
            "supervisors": supervisors,
            "actors": actors,
        }
