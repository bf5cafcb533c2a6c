"""ActorSystem: virtual actors addressed by id, activated on demand, passivated when idle."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable
from enum import StrEnum
from typing import Any

import structlog

from propdev.actors.actor import ActorCell, ActorState, Factory, Kind
from propdev.actors.address import Address
from propdev.actors.errors import (
    ActorError,
    ActorStoppedError,
    AskTimeout,
    InvalidAddressError,
    UnknownActorError,
)
from propdev.supervision import (
    Backoff,
    ChildSpec,
    DeadLetters,
    EscalationError,
    Restart,
    RestartIntensity,
    RestartStrategy,
    SupervisionTree,
    Supervisor,
)

log = structlog.get_logger()

Target = str | Address

DEFAULT_KIND_INTENSITY = RestartIntensity(intensity=100, period=10.0)
"""A kind supervisor holds many independent actors: it escalates only on a storm."""
DEFAULT_ROOT_INTENSITY = RestartIntensity(intensity=3, period=60.0)

_SWEEP_BATCH = 256
_IDLE = ActorState.IDLE


class SystemState(StrEnum):
    CREATED = "created"
    RUNNING = "running"
    STOPPING = "stopping"
    STOPPED = "stopped"


def _expire(reply: asyncio.Future[Any], key: str, timeout: float) -> None:
    if not reply.done():
        reply.set_exception(AskTimeout(f"no reply from {key} within {timeout:g}s"))


class ActorSystem:
    """A node's actors: one supervisor per registered kind under the node's root.

    Virtual actors are addressed as `kind:id`, activated by their first message and
    passivated by a periodic sweep once idle for their kind's `passivate_after`
    (`idle_timeout` by default; `math.inf` never passivates). All time comes from
    `clock` (monotonic seconds) and all backoff waits go through `sleep`, so tests can
    drive intensity windows and idleness without sleeping.

    Use it from the event loop's thread only.
    """

    def __init__(
        self,
        node_id: str,
        *,
        idle_timeout: float = 300.0,
        mailbox_capacity: int = 1000,
        ask_timeout: float = 10.0,
        sweep_interval: float | None = None,
        max_attempts: int = 3,
        kind_intensity: RestartIntensity = DEFAULT_KIND_INTENSITY,
        root_intensity: RestartIntensity = DEFAULT_ROOT_INTENSITY,
        backoff: Backoff | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        dead_letter_capacity: int = 1000,
        on_failed: Callable[[EscalationError], None] | None = None,
    ) -> None:
        if max_attempts < 1:
            raise ValueError(f"max_attempts must be >= 1, got {max_attempts}")
        self.node_id = node_id
        self.idle_timeout = idle_timeout
        self.mailbox_capacity = mailbox_capacity
        self.ask_timeout = ask_timeout
        self.sweep_interval = sweep_interval
        self.max_attempts = max_attempts
        self.kind_intensity = kind_intensity
        self.backoff = backoff if backoff is not None else Backoff()
        self.clock = clock
        self._sleep = sleep
        self.dead_letters = DeadLetters(dead_letter_capacity, clock=wall_clock)
        self._on_failed = on_failed
        self._cells: dict[str, ActorCell] = {}
        self._kinds: dict[str, Kind] = {}
        self._state = SystemState.CREATED
        self._sweeper: asyncio.Task[None] | None = None
        self.tree = SupervisionTree(
            node_id,
            intensity=root_intensity,
            backoff=self.backoff,
            clock=clock,
            sleep=sleep,
            on_failed=self._tree_failed,
        )

    def __repr__(self) -> str:
        return f"<ActorSystem {self.node_id!r} {self._state} actors={len(self._cells)}>"

    # -- configuration --------------------------------------------------------------------

    def register_kind(
        self,
        kind: str,
        factory: Factory,
        *,
        passivate_after: float | None = None,
        mailbox_capacity: int | None = None,
        intensity: RestartIntensity | None = None,
        backoff: Backoff | None = None,
        shutdown: float | None = 5.0,
    ) -> Supervisor:
        """Declare a kind of virtual actor; `factory(address)` builds an instance.

        Call before `start()`. The kind gets its own one-for-one supervisor under the node
        root, in registration order.
        """
        if self._state is not SystemState.CREATED:
            raise ActorError("register kinds before the system starts")
        if not kind or ":" in kind:
            raise InvalidAddressError(f"invalid actor kind: {kind!r}")
        if kind in self._kinds:
            raise ActorError(f"kind {kind!r} is already registered")
        supervisor = Supervisor(
            kind,
            strategy=RestartStrategy.ONE_FOR_ONE,
            intensity=intensity if intensity is not None else self.kind_intensity,
            backoff=backoff if backoff is not None else self.backoff,
            dynamic_restart=Restart.TRANSIENT,
            dynamic_shutdown=shutdown,
            clock=self.clock,
            sleep=self._sleep,
        )
        self._kinds[kind] = self._kind(
            kind,
            factory,
            capacity=mailbox_capacity or self.mailbox_capacity,
            passivate_after=self.idle_timeout if passivate_after is None else passivate_after,
            supervisor=supervisor,
        )
        self.tree.root.add_child(
            ChildSpec(id=kind, start=lambda: supervisor, restart=Restart.PERMANENT, shutdown=None)
        )
        return supervisor

    def _kind(
        self,
        name: str,
        factory: Factory,
        *,
        capacity: int,
        passivate_after: float,
        supervisor: Supervisor | None,
    ) -> Kind:
        return Kind(
            self,
            name,
            factory,
            capacity=capacity,
            passivate_after=passivate_after,
            supervisor=supervisor,
            clock=self.clock,
            dead_letters=self.dead_letters,
            max_attempts=self.max_attempts,
            registry=self._cells,
        )

    def child_spec(
        self,
        address: Target,
        factory: Factory,
        *,
        restart: Restart = Restart.PERMANENT,
        shutdown: float | None = 5.0,
        mailbox_capacity: int | None = None,
    ) -> ChildSpec:
        """A `ChildSpec` for a static (never passivated) actor under a classic `Supervisor`.

        The actor is reachable with `tell`/`ask` at `address` once its supervisor starts it.
        """
        addr = Address.of(address)

        def start() -> ActorCell:
            if addr.key in self._cells:
                raise ActorError(f"actor {addr.key} already exists")
            kind = self._kind(
                addr.kind,
                factory,
                capacity=mailbox_capacity or self.mailbox_capacity,
                passivate_after=math.inf,
                supervisor=None,
            )
            cell = ActorCell(addr, kind, kind.capacity)
            self._cells[addr.key] = cell
            return cell

        return ChildSpec(id=addr.key, start=start, restart=restart, shutdown=shutdown)

    async def add_supervisor(self, supervisor: Supervisor) -> None:
        """Hang a classic supervisor (static children) under the node root."""
        await self.tree.add(supervisor)

    # -- life -----------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._state is SystemState.RUNNING

    @property
    def failed(self) -> bool:
        """True once the root supervisor gave up (see `tree.failure`); for /readyz."""
        return self.tree.failed

    @property
    def ready(self) -> bool:
        return self.running and not self.failed

    async def start(self) -> None:
        if self._state is not SystemState.CREATED:
            raise ActorError(f"actor system is {self._state}")
        self._state = SystemState.RUNNING
        await self.tree.start()
        interval = self._sweep_every()
        if math.isfinite(interval):
            self._sweeper = asyncio.get_running_loop().create_task(
                self._sweep_forever(interval), name=f"actors:{self.node_id}:sweep"
            )
        log.info("actor_system_started", node=self.node_id, kinds=list(self._kinds))

    async def stop(self) -> None:
        """Stop everything in reverse order; each activated actor's `on_stop` runs."""
        if self._state is not SystemState.RUNNING:
            self._state = SystemState.STOPPED
            return
        self._state = SystemState.STOPPING
        sweeper, self._sweeper = self._sweeper, None
        if sweeper is not None:
            sweeper.cancel()
            await asyncio.wait((sweeper,))
        await self.tree.stop()
        self._close_all()
        self._state = SystemState.STOPPED
        log.info("actor_system_stopped", node=self.node_id)

    # -- messaging ------------------------------------------------------------------------

    def tell(self, target: Target, message: object) -> None:
        """Send without waiting; activates the actor. Raises MailboxFull when it is full."""
        cell = self._cells.get(target if isinstance(target, str) else target.key)
        if cell is None:
            cell = self._activate(target)
        cell.deliver((message, None))

    async def send(self, target: Target, message: object) -> None:
        """Like `tell`, but waits for room in a full mailbox instead of raising."""
        cell = self._cells.get(target if isinstance(target, str) else target.key)
        if cell is None:
            cell = self._activate(target)
        await cell.deliver_wait((message, None))

    async def ask(
        self,
        target: Target,
        message: object,
        timeout: float | None = None,  # noqa: ASYNC109 - part of the public API; cheaper than asyncio.timeout
    ) -> Any:
        """Send and wait for the reply (what `receive` returned, or what it raised).

        Raises AskTimeout after `timeout` seconds (`ask_timeout` by default); an ask still
        queued when its asker gave up is dropped unhandled.
        """
        cell = self._cells.get(target if isinstance(target, str) else target.key)
        if cell is None:
            cell = self._activate(target)
        loop = asyncio.get_running_loop()
        reply: asyncio.Future[Any] = loop.create_future()
        cell.deliver((message, reply))
        if timeout is None:
            timeout = self.ask_timeout
        handle = loop.call_later(timeout, _expire, reply, cell.address.key, timeout)
        try:
            return await reply
        finally:
            handle.cancel()

    def is_active(self, target: Target) -> bool:
        """True when the actor is activated (in memory) on this node."""
        return (target if isinstance(target, str) else target.key) in self._cells

    def ref(self, target: Target) -> ActorRef:
        return ActorRef(self, Address.of(target))

    def _activate(self, target: Target) -> ActorCell:
        if self._state is not SystemState.RUNNING or self.tree.failed:
            state = "failed" if self.tree.failed else self._state.value
            raise ActorStoppedError(f"actor system {self.node_id!r} is {state}")
        if isinstance(target, Address):
            address = target
        else:
            kind_name, sep, ident = target.partition(":")
            if not sep or not ident:
                raise InvalidAddressError(f"actor address must be 'kind:id', got {target!r}")
            known = self._kinds.get(kind_name)
            address = Address(known.name if known is not None else kind_name, ident)
        kind = self._kinds.get(address.kind)
        if kind is None or kind.supervisor is None:
            raise UnknownActorError(f"no actor at {address.key} and no kind {address.kind!r}")
        if not kind.supervisor.running:
            raise ActorStoppedError(f"supervisor of {kind.name!r} is {kind.supervisor.state}")
        cell = ActorCell(address, kind, kind.capacity)
        kind.supervisor.attach(cell)
        self._cells[address.key] = cell
        kind.activations += 1
        return cell

    # -- operations -----------------------------------------------------------------------

    async def restart(self, target: Target) -> None:
        """Operator restart of an activated actor: `on_stop`, new instance, `on_start`."""
        key = target if isinstance(target, str) else target.key
        cell = self._cells.get(key)
        if cell is None:
            raise UnknownActorError(f"no activated actor at {key}")
        parent = cell.parent
        if not isinstance(parent, Supervisor):
            raise ActorError(f"actor {key} has no supervisor")
        await parent.restart_child(key)

    async def passivate_matching(
        self, predicate: Callable[[Address], bool], *, within: float = 5.0
    ) -> int:
        """Passivate every activated actor whose address matches, each as soon as it is idle
        (a shard hand-off: their state is saved); give up on the busy ones after ``within``."""
        deadline = self.clock() + within
        pending = [c for c in self._cells.values() if predicate(c.address)]
        passivated = 0
        while pending:
            results = await asyncio.gather(*(self._passivate(c, math.inf) for c in pending))
            passivated += sum(results)
            pending = [
                c
                for c, ok in zip(pending, results, strict=True)
                if not ok and self._cells.get(c.address.key) is c
            ]
            if not pending or self.clock() >= deadline:
                break
            await asyncio.sleep(0.02)
        if pending:
            log.warning("actors_not_passivated", node=self.node_id, count=len(pending))
        return passivated

    async def passivate_idle(self) -> int:
        """Run one passivation sweep now; return how many actors were passivated."""
        # One loop iteration lets actors that have just emptied their mailbox go idle.
        await asyncio.sleep(0)
        now = self.clock()
        candidates = [
            cell
            for cell in self._cells.values()
            if cell.state is _IDLE
            and not cell.busy
            and now - cell.last_active >= cell.kind.passivate_after
        ]
        passivated = 0
        for start in range(0, len(candidates), _SWEEP_BATCH):
            batch = candidates[start : start + _SWEEP_BATCH]
            results = await asyncio.gather(*(self._passivate(cell, now) for cell in batch))
            passivated += sum(results)
        if passivated:
            log.info("actors_passivated", node=self.node_id, count=passivated)
        return passivated

    async def _passivate(self, cell: ActorCell, now: float) -> bool:
        kind = cell.kind
        if not await cell.passivate(now - kind.passivate_after):
            return False
        key = cell.address.key
        if self._cells.get(key) is cell:
            del self._cells[key]
        if kind.supervisor is not None:
            kind.supervisor.detach(key)
        kind.passivations += 1
        return True

    def _sweep_every(self) -> float:
        if self.sweep_interval is not None:
            return self.sweep_interval
        shortest = min(
            [self.idle_timeout, *(kind.passivate_after for kind in self._kinds.values())]
        )
        return min(max(shortest / 2, 1.0), 60.0) if math.isfinite(shortest) else math.inf

    async def _sweep_forever(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                await self.passivate_idle()
            except Exception:
                log.exception("passivation_sweep_failed", node=self.node_id)

    def _tree_failed(self, error: EscalationError) -> None:
        self._close_all()
        if self._on_failed is not None:
            self._on_failed(error)

    def _close_all(self) -> None:
        for cell in list(self._cells.values()):
            cell.close()
        self._cells.clear()

    async def settle(self) -> None:
        """Wait until the supervision tree has handled every reported failure."""
        await self.tree.settle()

    # -- observation ----------------------------------------------------------------------

    def snapshot(self, *, max_actors: int | None = None) -> dict[str, Any]:
        """node -> supervisors -> actors, JSON-serialisable (for /admin/api/v1/actors)."""
        return self.tree.snapshot(max_actors=max_actors)

    def stats(self) -> dict[str, Any]:
        dead_by_kind = self.dead_letters.by_kind()
        kinds: dict[str, dict[str, int]] = {}
        for name, kind in self._kinds.items():
            supervisor = kind.supervisor
            assert supervisor is not None
            kinds[name] = {
                "active": len(supervisor),
                "activations": kind.activations,
                "passivations": kind.passivations,
                "restarts": supervisor.child_restarts,
                "dead_letters": dead_by_kind.get(name, 0),
            }
        return {
            "node": self.node_id,
            "state": self._state.value,
            "failed": self.failed,
            "active_actors": len(self._cells),
            "activations": sum(k["activations"] for k in kinds.values()),
            "passivations": sum(k["passivations"] for k in kinds.values()),
            "restarts": _restarts_under(self.tree.root),
            "dead_letters": self.dead_letters.total,
            "kinds": kinds,
        }


def _restarts_under(supervisor: Supervisor) -> int:
    total = supervisor.child_restarts
    for child in supervisor.children():
        if isinstance(child, Supervisor):
            total += _restarts_under(child)
    return total


class ActorRef:
    """A handle on one address: `ref.tell(msg)`, `await ref.ask(msg)`. Survives passivation."""

    __slots__ = ("address", "system")

    def __init__(self, system: ActorSystem, address: Address) -> None:
        self.system = system
        self.address = address

    def __repr__(self) -> str:
        return f"<ActorRef {self.address.key}>"

    def tell(self, message: object) -> None:
        self.system.tell(self.address, message)

    async def send(self, message: object) -> None:
        await self.system.send(self.address, message)

    async def ask(self, message: object, timeout: float | None = None) -> Any:  # noqa: ASYNC109 - mirrors ActorSystem.ask
        return await self.system.ask(self.address, message, timeout)
