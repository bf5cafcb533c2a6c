"""DeviceActor: one per access point; the only writer of that door's commands.

Every open of the door, whatever the credential (an app tap or an operator's ``OpenAccessPoint``,
a plate or a code in a partner's ``DeviceEvent``), goes through the node's opening pipeline
(``propdev.access.opening``) inside this actor's mailbox, one at a time, so that the idempotency
check and the command it guards cannot race. The actor keeps the device's state (online, fault,
opens) from what the outcome says of the device. A vendor outage is an outcome for the asker,
never a crash.

The device's state reports (``DeviceReports``: online/offline, faults) are the one exception to
one-at-a-time: the actor ``interleaves`` them, applied beside an open in flight. An asynchronous
vendor posts a report and then, in order, the confirmation that open waits for; queued behind
the open, the report would hold the confirmation until the open timed out (see
``propdev.devices.ingest``). A report changes only ``online``/``fault``/``last_seen`` (at once,
between two awaits of the open, which learns its own outcome afterwards, newest last) and writes
its own row of ``partner_events``; the device's state is written under ``_writing``, so that two
transactions never commit two snapshots out of order.

An open through a vendor that confirms later (``PartnerGateway.confirms_later``: acme answers
202 + ticket and posts a ``command_result``) does not hold the mailbox while the vendor works.
Whatever acme posts before that result must keep the device's order (an ``entry`` links to the
open it followed; a plate or a code is an open of its own), so it cannot go beside the open as
a report does; and acme posts in order, so queued behind the open it would hold the result back
until the open timed out. So the open is taken apart, as actors answer what waits on someone
else: the handler decides (``Opening.start``, in mailbox order: replay, rules, precheck), starts
the command in a task of its own and returns a ``Deferred`` (the asker's reply, given later);
the mailbox goes on. The task waits for the vendor (the gateway's timeout, breaker and bulkhead
bound it, the confirmation included) and sends the actor ``_Settled``; handled in turn, it
records the open (``PendingOpen.record``: audit, command lifecycle, event, idempotency answer,
one fenced transaction) and answers the asker. Meanwhile:

- a second open with the same idempotency key waits for the first and is then handled as if
  queued behind it (a replay of the first's answer);
- an ``entry``/``exit`` naming a pending open's command (the vendor sent it before that open's
  result, against its own order) is kept on that open and applied once it is recorded, linked
  to it (``passage``) rather than to an older open;
- other events and opens go on in mailbox order (two taps: two pending opens);
- on a stop or a crash the pending opens are recorded as they stand (failed, ``interrupted``,
  unless the vendor's answer is in) and their askers answered: never a hang. The asker's ask
  timeout (the node's) bounds the wait as before, and an actor with opens pending is not
  passivated.

A vendor that answers the request itself (the simulator's 200) is opened in the handler as
before (``Opening.open``): its answer is due within the request, and nothing it posts waits for it.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any

import structlog

from propdev.access import (
    OpenOutcome,
    OpenRequest,
    PendingOpen,
    Reason,
    Via,
    failed,
    refused,
)
from propdev.actors.actor import Actor
from propdev.actors.deferred import Deferred
from propdev.actors.errors import ActorError
from propdev.actors.messages import (
    DeviceEvent,
    DeviceEvents,
    DeviceReports,
    DeviceSnapshot,
    OpenAccessPoint,
)
from propdev.devices import CREDENTIALS, FAULTS, PASSAGES, PRESENCE, presence_of
from propdev.observability.tracing import current_traceparent
from propdev.push import enqueue_offline
from propdev.storage import audit, commands, events, partner_events, run
from propdev.storage.audit import AuditRecord

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection

    from propdev.access import Opening
    from propdev.observability import Tracing
    from propdev.partners import PartnerGateway
    from propdev.registry import Bus, ShardGuard
    from propdev.storage import Database
    from propdev.storage.directory import AccessPoint, Directory

log = structlog.get_logger()

# An entry/exit without our command id links to the latest confirmed open this recent.
PASSAGE_WINDOW = 120.0


@dataclass(slots=True)
class DeviceDeps:
    """What device actors share: built once per node."""

    db: Database
    directory: Directory
    gateways: dict[str, PartnerGateway]
    bus: Bus
    heartbeat: float = 120.0
    clock: Callable[[], float] = time.time
    guard: ShardGuard | None = None  # in a cluster: may this node act for the device?
    opening: Opening | None = None  # the opening pipeline: every open of the door goes through it
    tracing: Tracing | None = None  # a span per open handled (the node's telemetry)


@dataclass(slots=True)
class DeviceState:
    """Durable state: ``online``/``fault`` as last reported, ``last_seen`` the last sign of
    life, ``state_at`` when the vendor last reported a change (older reports are ignored)."""

    online: bool | None = None
    last_seen: float | None = None
    opens: int = 0
    last_command_id: str | None = None
    fault: str | None = None
    state_at: float | None = None


@dataclass(slots=True, eq=False)
class _Pending:
    """An open whose vendor confirms later, waiting for it outside the mailbox."""

    open: PendingOpen
    reply: Deferred[OpenOutcome]  # the asker's (nobody's for a plate or a code)
    key: tuple[str, str] | None  # (subject, idempotency key)
    task: asyncio.Task[None] | None = None
    outcome: OpenOutcome | None = None  # the vendor's answer, once in
    repeats: list[tuple[OpenRequest, Deferred[OpenOutcome]]] = field(default_factory=list)
    passages: list[DeviceEvent] = field(default_factory=list)  # naming it, come before it


@dataclass(frozen=True, slots=True)
class _Settled:
    """A pending open's answer, back in its actor's mailbox (a tell to itself)."""

    pending: _Pending
    error: Exception | None = None  # the command raised (a bug): for the asker


class DeviceActor(Actor):
    """Lifecycle: on_start loads the access point and the durable state; on_stop answers the
    opens still pending and saves the state; on_failure answers them too."""

    def __init__(self, deps: DeviceDeps) -> None:
        super().__init__()
        self.deps = deps
        self.access_point: AccessPoint | None = None
        self.state = DeviceState()
        self._writing = asyncio.Lock()  # one transaction saving the state at a time
        self._pending: set[_Pending] = set()
        self._keyed: dict[tuple[str, str], _Pending] = {}
        self._commands: dict[str, _Pending] = {}  # by our command id (passages name it)

    @property
    def access_point_id(self) -> str:
        return self.address.id

    async def on_start(self) -> None:
        self.access_point = await self.deps.directory.access_point(self.access_point_id)
        row = await self.deps.db.fetch_one(
            "SELECT state FROM device_state WHERE access_point_id = :id", id=self.access_point_id
        )
        if row is not None:
            self.state = DeviceState(**json.loads(row["state"]))

    def interleaves(self, message: object) -> bool:
        """State reports are applied beside an open in flight, not behind it."""
        return isinstance(message, DeviceReports)

    def may_passivate(self) -> bool:
        """Not while an open waits for its vendor (a plate's or a code's has no asker)."""
        return not self._pending

    async def on_stop(self) -> None:
        await self._interrupt()
        async with self._writing, self.deps.db.transaction() as conn:
            guard = self.deps.guard  # fenced: a node that lost the shard must not write
            if guard is None or await guard.may_save(conn, self.access_point_id):
                await self._save_state(conn)

    async def _save_state(self, conn: AsyncConnection) -> None:
        await run(
            conn,
            "INSERT INTO device_state (access_point_id, state, updated_at) VALUES (:id, :s, :t) "
            "ON CONFLICT (access_point_id) DO UPDATE SET state = :s, updated_at = :t",
            id=self.access_point_id,
            s=json.dumps(asdict(self.state)),
            t=time.time(),
        )

    async def receive(self, message: object) -> object:
        if isinstance(message, OpenAccessPoint):
            request = OpenRequest(
                via=Via.MANUAL if message.on_behalf else Via.APP,
                subject=message.user_id,
                command_id=message.command_id,
                idempotency_key=message.idempotency_key,
                note=message.note,
                traceparent=message.traceparent,
            )
            if self.deps.tracing is None:
                return await self.open(request)
            with self.deps.tracing.message_span(
                "device open", message.traceparent, {"propdev.actor": self.address.key}
            ):
                request = replace(request, traceparent=current_traceparent() or message.traceparent)
                return await self.open(request)
        if isinstance(message, DeviceEvents | DeviceReports):
            return [await self._apply(event) for event in message.events]
        if isinstance(message, DeviceEvent):
            return await self._apply(message)
        if isinstance(message, DeviceSnapshot):
            return self.snapshot()
        if isinstance(message, _Settled):
            await self._settle(message)
            return None
        raise TypeError(f"DeviceActor cannot handle {type(message).__name__}")

    def snapshot(self) -> dict[str, Any]:
        """The device as the API shows it: presence computed from the clock now."""
        state = asdict(self.state)
        shown = presence_of(state, now=self.deps.clock(), heartbeat=self.deps.heartbeat)
        return {
            "access_point_id": self.access_point_id,
            **shown.as_dict(),
            "last_seen": self.state.last_seen,
            "fault": self.state.fault,
            "opens": self.state.opens,
        }

    # -- partner events ----------------------------------------------------------------------

    async def _apply(self, event: DeviceEvent) -> str:
        """Apply one partner event once: ``accepted``, ``duplicate`` or ``rejected:<reason>``."""
        if self.deps.guard is not None:
            self.deps.guard.precheck(self.access_point_id)  # NotOwnerError: the asker forwards
        if event.type in CREDENTIALS:
            async with self.deps.db.connect() as conn:
                if await partner_events.seen(
                    conn, partner_id=event.partner_id, event_id=event.event_id
                ):
                    return "duplicate"
            await self._on_credential(event)
            async with self._writing, self.deps.db.transaction() as conn:
                await self._fence(conn)  # FencedError: a newer owner of the shard
                if not await self._remember(conn, event):
                    return "duplicate"
                self._sign_of_life(event)
                await self._save_state(conn)
            return "accepted"
        if event.type in PRESENCE or event.type in FAULTS:
            async with self._writing, self.deps.db.transaction() as conn:
                await self._fence(conn)  # FencedError: a newer owner of the shard
                if not await self._remember(conn, event):
                    return "duplicate"
                was_offline = self.state.online is False
                self._report(event)
                await self._save_state(conn)
                pushes = 0
                if event.type == "device_offline" and not was_offline and not self.state.online:
                    pushes = await enqueue_offline(  # staff who opted in, in this transaction
                        conn,
                        access_point_id=self.access_point_id,
                        partner_id=event.partner_id,
                        event_id=event.event_id,
                        occurred_at=self._when(event),
                        now=self.deps.clock(),
                    )
            log.info(
                "device_reported",
                access_point_id=self.access_point_id,
                type=event.type,
                **({"pushes": pushes} if pushes else {}),
            )
            return "accepted"
        if event.type in PASSAGES:
            return await self._passage(event)
        return f"rejected:unsupported_type:{event.type}"

    async def _on_credential(self, event: DeviceEvent) -> None:
        """A plate or a pass presented at this device: the opening pipeline decides."""
        plate = event.type == "plate_recognized"
        await self.open(
            OpenRequest(
                via=Via.PLATE if plate else Via.CODE,
                value=event.plate if plate else event.code,
                occurred_at=event.occurred_at,
            )
        )

    async def _fence(self, conn: AsyncConnection) -> None:
        """In a cluster: refuse the commit if this node no longer holds the device's shard."""
        if self.deps.guard is not None:
            await self.deps.guard.check(conn, self.access_point_id)

    async def _remember(self, conn: AsyncConnection, event: DeviceEvent) -> bool:
        return await partner_events.remember(
            conn,
            partner_id=event.partner_id,
            event_id=event.event_id,
            device_id=event.device_id,
            type=event.type,
            at=self.deps.clock(),
        )

    def _when(self, event: DeviceEvent) -> float:
        return min(event.occurred_at, self.deps.clock())

    def _sign_of_life(self, event: DeviceEvent) -> None:
        at = self._when(event)
        if self.state.last_seen is None or at > self.state.last_seen:
            self.state.last_seen = at
        if self.state.state_at is None or at >= self.state.state_at:
            self.state.online = True
            self.state.state_at = at

    def _report(self, event: DeviceEvent) -> None:
        """A state report; one older than the last applied report changes nothing."""
        at = self._when(event)
        if self.state.state_at is not None and at < self.state.state_at:
            return
        if event.type == "device_offline":
            self.state.online = False
            self.state.state_at = at
            return
        self._sign_of_life(event)
        if event.type in FAULTS:
            self.state.fault = FAULTS[event.type]

    async def _passage(self, event: DeviceEvent) -> str:
        """Entry/exit: linked to the open it followed, told to that resident, audited. One that
        names an open still waiting for its vendor is applied once that open is recorded."""
        pending = self._commands.get(event.command_ref) if event.command_ref else None
        if pending is not None:
            if any(e.event_id == event.event_id for e in pending.passages):
                return "duplicate"
            pending.passages.append(event)
            log.info("device_passage_early", access_point_id=self.access_point_id, type=event.type)
            return "accepted"
        at = self._when(event)
        published: dict[str, Any] | None = None
        user_id: str | None = None
        db = self.deps.db
        async with self._writing, db.transaction() as conn:
            await self._fence(conn)  # FencedError: a newer owner of the shard
            if not await self._remember(conn, event):
                return "duplicate"
            self._sign_of_life(event)
            await self._save_state(conn)
            command = await commands.passage_candidate(
                conn,
                access_point_id=self.access_point_id,
                command_id=event.command_ref,
                vendor_command_id=event.vendor_command_id,
                since=at - PASSAGE_WINDOW,
            )
            command_id = str(command["id"]) if command is not None else None
            data = {"event_id": event.event_id, **({"plate": event.plate} if event.plate else {})}
            await audit.append(
                conn,
                db.dialect,
                AuditRecord(
                    at=at,
                    actor=f"partner:{event.partner_id}",
                    action=event.type,
                    access_point_id=self.access_point_id,
                    decision="granted",
                    reason="passage" if command_id else "passage_unlinked",
                    command_id=command_id,
                ),
            )
            if command is not None and command_id is not None:
                user_id = str(command["user_id"])
                await commands.add_steps(conn, command_id, [(event.type, at, data)])
                await commands.set_status(conn, command_id, "passage", at)
                published = await events.append(
                    conn,
                    user_id=user_id,
                    type=f"access.{event.type}",
                    access_point_id=self.access_point_id,
                    command_id=command_id,
                    occurred_at=at,
                    data=data,
                )
        if published is not None and user_id is not None:
            await self.deps.bus.publish(f"user:{user_id}", published)
        log.info(
            "device_passage",
            access_point_id=self.access_point_id,
            type=event.type,
            command_id=command_id,
        )
        return "accepted"

    # -- opens -------------------------------------------------------------------------------

    async def open(
        self, request: OpenRequest, reply: Deferred[OpenOutcome] | None = None
    ) -> OpenOutcome | Deferred[OpenOutcome]:
        """Open this door through the opening pipeline; the outcome's news of the device is
        kept in its state. Through a vendor that confirms later, the answer is a ``Deferred``
        (``reply`` if given) resolved once the open is recorded (see the module's docstring)."""
        ap, opening = self.access_point, self.deps.opening
        if ap is None:
            return refused(self.access_point_id, Reason.UNKNOWN_ACCESS_POINT)
        if opening is None:
            log.warning("open_ignored", access_point_id=self.access_point_id, reason="no_pipeline")
            return failed(self.access_point_id, Reason.NO_PARTNER)
        gateway = self.deps.gateways.get(ap.partner_id)
        guard = self.deps.guard  # in a cluster: fenced on this node's hold of the shard
        fence = None if guard is None else guard.fencing(self.access_point_id)
        precheck = None if guard is None else lambda: guard.precheck(self.access_point_id)
        if gateway is None or not gateway.confirms_later:
            outcome = await opening.open(ap, request, gateway, fence=fence, precheck=precheck)
            self._learn(outcome)
            return outcome
        key = None
        if request.subject is not None and request.idempotency_key is not None:
            key = (request.subject, request.idempotency_key)
            first = self._keyed.get(key)
            if first is not None:  # a repeat: handled once the first is, as if queued behind it
                reply = reply or Deferred()
                first.repeats.append((request, reply))
                return reply
        started = await opening.start(ap, request, gateway, fence=fence, precheck=precheck)
        if isinstance(started, OpenOutcome):
            self._learn(started)
            return started
        pending = _Pending(started, reply or Deferred(), key)
        self._pending.add(pending)
        self._commands[started.command_id] = pending
        if key is not None:
            self._keyed[key] = pending
        pending.task = asyncio.get_running_loop().create_task(self._wait_for_vendor(pending))
        return pending.reply

    async def _wait_for_vendor(self, pending: _Pending) -> None:
        """The command, outside the mailbox; its answer goes back to the actor."""
        error = None
        try:
            pending.outcome = await pending.open.command()
        except Exception as exc:  # the pipeline turns the partner's errors into outcomes
            error = exc
        try:
            await self.system.send(self.address, _Settled(pending, error))
        except ActorError as exc:  # the system stops: on_stop answers the asker
            log.warning("open_unsettled", access_point_id=self.access_point_id, error=repr(exc))

    async def _settle(self, message: _Settled) -> None:
        """Record a pending open with its vendor's answer, answer its asker, then apply what
        waited for it. A tell: what fails goes to the asker, never crashes the actor."""
        pending = message.pending
        if pending not in self._pending:  # answered already (a stop), or an older instance's
            return
        self._forget(pending)
        try:
            if message.error is not None:
                raise message.error
            assert pending.outcome is not None
            outcome = await pending.open.record(pending.outcome)
        except Exception as exc:  # FencedError: the asker forwards to the shard's new owner
            pending.reply.fail(exc)
        else:
            self._learn(outcome)
            pending.reply.resolve(outcome)
        await self._after(pending)

    async def _after(self, pending: _Pending) -> None:
        """The entries that came early, then the repeats of the same request."""
        for event in pending.passages:
            try:
                await self._passage(event)
            except Exception as exc:
                log.error("device_passage_failed", event=event.event_id, error=repr(exc))
        for request, reply in pending.repeats:
            try:
                result = await self.open(request, reply)
            except Exception as exc:
                reply.fail(exc)
            else:
                if isinstance(result, OpenOutcome):
                    reply.resolve(result)

    def _forget(self, pending: _Pending) -> None:
        self._pending.discard(pending)
        if self._commands.get(pending.open.command_id) is pending:
            del self._commands[pending.open.command_id]
        if pending.key is not None and self._keyed.get(pending.key) is pending:
            del self._keyed[pending.key]

    async def _interrupt(self) -> None:
        """Answer every pending open now (a stop or a crash): recorded with the vendor's answer
        if it is in, else as failed (``interrupted``); never left to hang."""
        pendings = list(self._pending)
        tasks = [p.task for p in pendings if p.task is not None and not p.task.done()]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)
        for pending in pendings:
            self._forget(pending)
            outcome = pending.outcome or pending.open.interrupted()
            try:
                outcome = await pending.open.record(outcome)
            except Exception as exc:
                log.error("open_not_recorded", command_id=pending.open.command_id, error=repr(exc))
            else:
                self._learn(outcome)
            pending.reply.resolve(outcome)
            for _, reply in pending.repeats:
                reply.resolve(outcome)
            pending.repeats.clear()
            await self._after(pending)

    async def on_failure(self, exc: BaseException, message: object) -> None:
        await self._interrupt()

    def _learn(self, outcome: OpenOutcome) -> None:
        """What the vendor's answer (or silence) tells of the device."""
        if outcome.replayed:
            return
        if outcome.granted:
            self._seen(online=True)
            self.state.fault = None
            self.state.opens += 1
            self.state.last_command_id = outcome.command_id
        elif outcome.online is not None:
            self._seen(online=outcome.online)
            if outcome.vendor_reason == "device_jammed":
                self.state.fault = "jammed"
        elif outcome.reason in (Reason.PARTNER_TIMEOUT, Reason.PARTNER_UNAVAILABLE):
            self.state.online = None

    def _seen(self, *, online: bool) -> None:
        now = self.deps.clock()
        self.state.online = online
        self.state.last_seen = now
        self.state.state_at = now


__all__ = ("DeviceActor", "DeviceDeps")
