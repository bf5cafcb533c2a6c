"""Actor, the base class of domain actors, and ActorCell, the runtime that runs one.

An actor's state is touched by one task at a time: the cell's task while it has mail,
or the supervisor's/sweeper's call of a lifecycle hook while the cell has no task. The one
exception is the asks an actor says it ``interleaves``: handled at once beside the message in
progress (in a task of their own, interleaved with it at its awaits) rather than queued behind
it, as Orleans' ``[AlwaysInterleave]`` methods are; the actor keeps them to state that may
change under the message in progress.

A handler may also answer an ask later: it returns a ``Deferred`` (``propdev.actors.deferred``)
and the cell goes on with its mail; the actor resolves it from a later message. What an actor
still owes when it stops or crashes is failed for it (``ActorStoppedError``) after ``on_stop``
or ``on_failure``, and an actor owing replies is not passivated.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Callable
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Protocol

import structlog

from propdev.actors.address import Address
from propdev.actors.deferred import Deferred
from propdev.actors.errors import ActorStoppedError
from propdev.actors.mailbox import Mailbox

if TYPE_CHECKING:
    from propdev.supervision import DeadLetters, Parent, Supervisor

log = structlog.get_logger()

Envelope = tuple[object, "asyncio.Future[Any] | None"]
"""(message, reply future); the future is None for a tell."""

_THROUGHPUT = 64
"""Messages handled before a cell yields to the other tasks of the loop."""


class Runtime(Protocol):
    """What an actor sees of the system that runs it (an ``ActorSystem``): other actors."""

    def tell(self, target: str | Address, message: object) -> None: ...

    async def send(self, target: str | Address, message: object) -> None: ...

    async def ask(
        self,
        target: str | Address,
        message: object,
        timeout: float | None = None,  # noqa: ASYNC109 - mirrors ActorSystem.ask
    ) -> Any: ...


class Actor:
    """Base class of actors. Subclass it and override `receive` and the hooks you need.

    Lifecycle, in order:

    1. `address` (and `system`) are set on the new instance;
    2. `on_start()` loads durable state (virtual actors: at the first message after an
       activation or a restart);
    3. `receive(message)` for each message, one at a time; its return value is the
       reply to an `ask` (a `Deferred`: a reply the actor gives later, while it handles
       its next messages). An exception answering an ask goes to the asker and the
       actor carries on; an exception handling a tell crashes the actor;
    4. on a crash, `on_failure(exc, message)` (message is None when `on_start` failed),
       then the supervisor builds a new instance and goes back to 1; `on_stop` is *not*
       called, so state half-changed by the crash is not saved;
    5. `on_stop()` saves durable state when the actor is passivated after an idle
       period, stopped by its supervisor (also when restarted as a sibling) or stopped
       with the system; it (or `on_failure`) should answer the `Deferred` replies the
       actor still owes, which are otherwise failed with `ActorStoppedError`.

    `may_passivate()` lets an actor that holds something live (e.g. sockets) stay
    activated past its idle timeout.
    """

    __slots__ = ("__dict__", "address", "system")

    address: Address
    system: Runtime

    async def on_start(self) -> None:
        """Called before the first message; load durable state here."""

    async def receive(self, message: object) -> object:
        """Handle one message; the result is the reply to an ask."""
        raise NotImplementedError(f"{type(self).__name__} does not handle {type(message).__name__}")

    async def on_stop(self) -> None:
        """Called on a graceful stop or a passivation; save durable state here."""

    async def on_failure(self, exc: BaseException, message: object) -> None:
        """Called on the crashed instance before the supervisor restarts the actor."""

    def may_passivate(self) -> bool:
        """Return False to stay activated although idle."""
        return True

    def interleaves(self, message: object) -> bool:
        """True for a message to handle at once while another is in progress, instead of
        queued behind it: e.g. one the message in progress is waiting for the sender of to
        be answered. Asks only (a tell is always queued); the cell runs ``receive(message)``
        in a task of its own beside the current message, interleaved with it at its awaits,
        so its handler must only touch state that may change under the message in progress.
        When the actor has nothing in progress, the message is queued as any other."""
        return False


Factory = Callable[[Address], Actor]


class Kind:
    """What the cells of one kind share (one object per kind, not per actor); the system
    that runs them (``ActorSystem.register_kind``) fills it in."""

    __slots__ = (
        "activations",
        "capacity",
        "clock",
        "dead_letters",
        "factory",
        "max_attempts",
        "name",
        "passivate_after",
        "passivations",
        "registry",
        "supervisor",
        "system",
    )

    def __init__(
        self,
        system: Runtime,
        name: str,
        factory: Factory,
        *,
        capacity: int,
        passivate_after: float,
        supervisor: Supervisor | None,
        clock: Callable[[], float],
        dead_letters: DeadLetters,
        max_attempts: int,
        registry: dict[str, ActorCell],
    ) -> None:
        self.system = system
        self.name = name
        self.factory = factory
        self.capacity = capacity
        self.passivate_after = passivate_after
        self.supervisor = supervisor
        self.clock = clock
        self.dead_letters = dead_letters
        self.max_attempts = max_attempts
        self.registry = registry
        self.activations = 0
        self.passivations = 0


class ActorState(StrEnum):
    """Where an actor cell is in its life."""

    IDLE = "idle"
    """No task: either no mail, or never activated."""
    STARTING = "starting"
    RUNNING = "running"
    RESTARTING = "restarting"
    """Crashed; waits for its supervisor (mail is kept meanwhile)."""
    STOPPING = "stopping"
    STOPPED = "stopped"


_IDLE = ActorState.IDLE
_STARTING = ActorState.STARTING
_RUNNING = ActorState.RUNNING
_RESTARTING = ActorState.RESTARTING
_STOPPING = ActorState.STOPPING
_STOPPED = ActorState.STOPPED


class ActorCell:
    """The runtime around one actor: address, mailbox, instance, task, restart bookkeeping.

    A cell has an asyncio task only while it has mail (or is starting); an idle cell is a
    few small objects. It is a supervision `Child`: a restart keeps the cell, its address
    and its mailbox, and builds a new actor instance.
    """

    __slots__ = (
        "_attempts",
        "_beside",
        "_owed",
        "_retry",
        "_task",
        "actor",
        "address",
        "kind",
        "last_active",
        "mailbox",
        "parent",
        "restarts",
        "state",
    )

    def __init__(self, address: Address, kind: Kind, capacity: int) -> None:
        self.address = address
        self.kind = kind
        self.mailbox: Mailbox[Envelope] = Mailbox(capacity)
        self.parent: Parent | None = None
        self.actor: Actor | None = None
        self.state = _IDLE
        self.restarts = 0
        self.last_active = kind.clock()
        self._task: asyncio.Task[None] | None = None
        self._retry: Envelope | None = None
        self._attempts = 0
        self._beside: set[asyncio.Task[None]] = set()  # interleaved asks in progress
        self._owed: set[Deferred[Any]] = set()  # replies the actor gives later

    def __repr__(self) -> str:
        return f"<ActorCell {self.address.key} {self.state}>"

    @property
    def id(self) -> str:
        return self.address.key

    @property
    def crashed(self) -> bool:
        return self.state is _RESTARTING

    @property
    def busy(self) -> bool:
        return self._task is not None or bool(self._beside) or bool(self._owed)

    # -- delivery -------------------------------------------------------------------------

    def deliver(self, envelope: Envelope) -> None:
        """Queue an envelope (MailboxFull when full) and make sure a task handles it; an ask
        the running actor ``interleaves`` is handled at once beside its current message."""
        message, reply = envelope
        actor = self.actor
        if (
            reply is not None
            and actor is not None
            and self.state is _RUNNING
            and self._task is not None
            and actor.interleaves(message)
        ):
            self._interleave(actor, message, reply)
            return
        self.mailbox.put_nowait(envelope)
        if self._task is None and self.state is _IDLE:
            self._spawn(None)

    async def deliver_wait(self, envelope: Envelope) -> None:
        """Queue an envelope, waiting for room in the mailbox."""
        await self.mailbox.put(envelope)
        if self._task is None and self.state is _IDLE:
            self._spawn(None)

    def _interleave(self, actor: Actor, message: object, reply: asyncio.Future[Any]) -> None:
        """Handle an ask beside the message in progress; what it raises goes to the asker."""

        async def handle() -> None:
            structlog.contextvars.bind_contextvars(actor=self.address.key)
            try:
                result = await actor.receive(message)
            except Exception as exc:
                if not reply.done():
                    reply.set_exception(exc)
            else:
                self._answer(reply, result)

        task = asyncio.get_running_loop().create_task(handle(), context=contextvars.Context())
        self._beside.add(task)
        task.add_done_callback(self._beside.discard)

    def _spawn(self, started: asyncio.Future[None] | None) -> None:
        # A fresh context: the sender's context variables (request ids) must not stick to
        # every later message of this actor.
        self._task = asyncio.get_running_loop().create_task(
            self._run(started), context=contextvars.Context()
        )

    # -- the task -------------------------------------------------------------------------

    async def _run(self, started: asyncio.Future[None] | None) -> None:
        structlog.contextvars.bind_contextvars(actor=self.address.key)
        try:
            if self.actor is None:
                if self.state is _IDLE:
                    self.state = _STARTING
                activated = await self._activate()
                if started is not None and not started.done():
                    started.set_result(None)
                if not activated:
                    return
            elif self.state is _IDLE:
                self.state = _RUNNING
            await self._drain()
        finally:
            self._task = None
            if started is not None and not started.done():
                started.set_result(None)
            if self.state is _RUNNING:
                self.state = _IDLE
            if not self.mailbox:
                self.mailbox.release()

    async def _activate(self) -> bool:
        actor: Actor | None = None
        try:
            actor = self.kind.factory(self.address)
            actor.address = self.address
            actor.system = self.kind.system
            await actor.on_start()
        except Exception as exc:
            log.error("actor_start_failed", actor=self.address.key, error=repr(exc))
            await self._crash(exc, None, actor)
            return False
        self.actor = actor
        if self.state is _STARTING:
            self.state = _RUNNING
        if self._retry is not None:
            self.mailbox.push_front(self._retry)
        return True

    async def _drain(self) -> None:
        actor = self.actor
        assert actor is not None
        receive = actor.receive
        mailbox = self.mailbox
        handled = 0
        while True:
            while mailbox:
                if self.state is not _RUNNING:
                    return
                envelope = mailbox.get_nowait()
                message, reply = envelope
                if reply is None:
                    try:
                        await receive(message)  # a Deferred answers nobody: dropped
                    except Exception as exc:
                        await self._crash(exc, envelope, actor)
                        return
                    if self._retry is envelope:
                        self._retry = None
                        self._attempts = 0
                elif not reply.done():
                    try:
                        result = await receive(message)
                    except Exception as exc:
                        if not reply.done():
                            reply.set_exception(exc)
                    else:
                        self._answer(reply, result)
                handled += 1
                if handled >= _THROUGHPUT:
                    handled = 0
                    await asyncio.sleep(0)
            self.last_active = self.kind.clock()
            # Linger one loop iteration: a sender answered just now often sends again,
            # and keeping the task saves creating a new one.
            await asyncio.sleep(0)
            if not mailbox or self.state is not _RUNNING:
                return

    def _answer(self, reply: asyncio.Future[Any], result: object) -> None:
        """Reply to an ask now, or, for a ``Deferred``, once the actor resolves it."""
        if isinstance(result, Deferred):
            result.forward(reply)
            if not result.done:
                self._owed.add(result)
                result.when_done(self._owed.discard)
        elif not reply.done():
            reply.set_result(result)

    def _fail_owed(self) -> None:
        """Fail the replies the stopped (or crashed) instance still owes: never a hang."""
        owed, self._owed = self._owed, set()
        if owed:
            error = ActorStoppedError(f"actor {self.address.key} stopped before it replied")
            for deferred in owed:
                deferred.fail(error)

    async def _crash(self, exc: Exception, envelope: Envelope | None, actor: Actor | None) -> None:
        self.actor = None
        self.state = _RESTARTING
        message = None
        attempts = 0
        if envelope is not None:
            message = envelope[0]
            attempts = self._attempts + 1 if envelope is self._retry else 1
            if attempts >= self.kind.max_attempts:
                self.kind.dead_letters.record(self.address.key, message, exc, attempts)
                self._retry = None
                self._attempts = 0
            else:
                self._retry = envelope
                self._attempts = attempts
        log.warning(
            "actor_crashed",
            actor=self.address.key,
            error=repr(exc),
            message=type(message).__name__ if envelope is not None else None,
            attempts=attempts,
        )
        if actor is not None:
            try:
                await actor.on_failure(exc, message)
            except Exception as hook_exc:
                log.error("actor_on_failure_failed", actor=self.address.key, error=repr(hook_exc))
        self._fail_owed()
        if self.parent is not None:
            self.parent.child_failed(self.address.key, exc)

    # -- supervision (Child protocol) -----------------------------------------------------

    async def start(self) -> None:
        """Build a new instance and run `on_start`, then handle whatever mail is queued
        (once the old instance's current message and interleaved asks are over)."""
        current = asyncio.current_task()
        tasks = [t for t in (self._task, *self._beside) if t is not None and t is not current]
        if tasks:
            await asyncio.wait(tasks)
        started: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.state = _STARTING
        self._spawn(started)
        await started

    async def stop(self, shutdown: float | None = None) -> None:
        """Let the current message and interleaved asks finish (at most `shutdown` seconds),
        then `on_stop`.

        The mailbox is kept: a restart carries on with it; `close()` releases it.
        """
        if self.state is _STOPPED:
            return
        self.state = _STOPPING
        current = asyncio.current_task()
        tasks = [t for t in (self._task, *self._beside) if t is not None and t is not current]
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=shutdown)
            if pending:
                log.warning("actor_killed", actor=self.address.key, shutdown=shutdown)
                for task in pending:
                    task.cancel()
                await asyncio.wait(pending)
        actor = self.actor
        self.actor = None
        if actor is not None:
            try:
                async with asyncio.timeout(shutdown):
                    await actor.on_stop()
            except Exception as exc:
                log.error("actor_stop_failed", actor=self.address.key, error=repr(exc))
        self._fail_owed()
        self.state = _STOPPED
        self.last_active = self.kind.clock()

    async def passivate(self, idle_since: float) -> bool:
        """Stop an actor idle since before `idle_since`; False if it is not (or got mail)."""
        if (
            self._task is not None
            or self._beside
            or self._owed
            or self.state is not _IDLE
            or self.mailbox
            or self.last_active > idle_since
            or (self.actor is not None and not self.actor.may_passivate())
        ):
            return False
        await self.stop(None)
        if self.mailbox:
            self.state = _IDLE
            self._spawn(None)
            return False
        return True

    def close(self) -> None:
        """Release the cell for good: pending asks fail, pending tells are dead-lettered."""
        self.state = _STOPPED
        key = self.address.key
        error = ActorStoppedError(f"actor {key} stopped")
        pending = self.mailbox.drain()
        retry = self._retry
        if retry is not None and not any(envelope is retry for envelope in pending):
            pending.insert(0, retry)
        for envelope in pending:
            message, reply = envelope
            if reply is None:
                attempts = self._attempts if envelope is retry else 0
                self.kind.dead_letters.record(key, message, error, attempts)
            elif not reply.done():
                reply.set_exception(error)
        self._retry = None
        self._attempts = 0
        self._fail_owed()
        self.mailbox.fail_waiters(error)
        registry = self.kind.registry
        if registry.get(key) is self:
            del registry[key]

    def snapshot(self) -> dict[str, Any]:
        return {
            "type": "actor",
            "id": self.address.key,
            "kind": self.address.kind,
            "state": self.state.value,
            "mailbox_depth": len(self.mailbox),
            "mailbox_capacity": self.mailbox.capacity,
            "restarts": self.restarts,
        }
