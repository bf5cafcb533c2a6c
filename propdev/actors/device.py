"""DeviceActor: one per access point; the only writer of that door's commands.

Opens of one door are handled one at a time, so the idempotency check and the command it
guards cannot race. Our rules were applied before the message was sent; the vendor's answer
is the confirmation. A vendor outage is an answer to the asker (502/503/504), never a crash.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import structlog

from propdev.actors.actor import Actor
from propdev.actors.messages import (
    DeviceEvent,
    DeviceEvents,
    DeviceSnapshot,
    OpenAccessPoint,
    OpenOutcome,
)
from propdev.devices import CREDENTIALS, FAULTS, PASSAGES, PRESENCE, presence_of
from propdev.ids import new_uuid
from propdev.observability.tracing import current_traceparent
from propdev.partners import (
    BulkheadFullError,
    CircuitOpenError,
    PartnerRefusedError,
    PartnerTimeoutError,
    PartnerUnavailableError,
)
from propdev.storage import audit, commands, events, partner_events, run
from propdev.storage.audit import AuditRecord

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection

    from propdev.access import AccessDesk
    from propdev.observability import Tracing
    from propdev.partners import PartnerGateway
    from propdev.registry import Bus, ShardGuard
    from propdev.storage import Database, UnitConnection
    from propdev.storage.directory import AccessPoint, Directory

log = structlog.get_logger()

PROBLEM_BASE = "https://propdev.example/problems/"
# An entry/exit without our command id links to the latest confirmed open this recent.
PASSAGE_WINDOW = 120.0
# The vendor's refusal codes as the command lifecycle names them.
FAILURE_REASONS = {
    "device_offline": "offline",
    "device_jammed": "jammed",
    "device_busy": "busy",
    "denied": "refused",
}


def problem(status: int, kind: str, title: str, detail: str, **extra: Any) -> dict[str, Any]:
    return {
        "type": PROBLEM_BASE + kind,
        "title": title,
        "status": status,
        "detail": detail,
        **extra,
    }


def command_id_for(user_id: str, idempotency_key: str | None) -> str:
    """A stable command id for a keyed request (so a retry reuses the vendor's key), else new."""
    if idempotency_key is None:
        return str(new_uuid())  # a uuid4, from a pooled draw (no system call per open)
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"propdev:{user_id}:{idempotency_key}"))


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
    access: AccessDesk | None = None  # decides presented credentials (plates, guest passes)
    tracing: Tracing | None = None  # a span per open handled (the node's telemetry)
    commands: commands.Commands = field(init=False)

    def __post_init__(self) -> None:
        self.commands = commands.Commands(self.db)


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


class DeviceActor(Actor):
    """Lifecycle: on_start loads the access point and the durable state; on_stop saves it."""

    def __init__(self, deps: DeviceDeps) -> None:
        super().__init__()
        self.deps = deps
        self.access_point: AccessPoint | None = None
        self.state = DeviceState()

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

    async def on_stop(self) -> None:
        async with self.deps.db.transaction() as conn:
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
            if self.deps.tracing is None:
                return await self._open(message)
            with self.deps.tracing.message_span(
                "device open", message.traceparent, {"propdev.actor": self.address.key}
            ):
                return await self._open(message)
        if isinstance(message, DeviceEvents):
            return [await self._apply(event) for event in message.events]
        if isinstance(message, DeviceEvent):
            return await self._apply(message)
        if isinstance(message, DeviceSnapshot):
            return self.snapshot()
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
            async with self.deps.db.transaction() as conn:
                await self._fence(conn)  # FencedError: a newer owner of the shard
                if not await self._remember(conn, event):
                    return "duplicate"
                self._sign_of_life(event)
                await self._save_state(conn)
            return "accepted"
        if event.type in PRESENCE or event.type in FAULTS:
            async with self.deps.db.transaction() as conn:
                await self._fence(conn)  # FencedError: a newer owner of the shard
                if not await self._remember(conn, event):
                    return "duplicate"
                self._report(event)
                await self._save_state(conn)
            log.info("device_reported", access_point_id=self.access_point_id, type=event.type)
            return "accepted"
        if event.type in PASSAGES:
            return await self._passage(event)
        return f"rejected:unsupported_type:{event.type}"

    async def _on_credential(self, event: DeviceEvent) -> None:
        """A plate or a pass presented at this device: our access rules decide."""
        ap, desk = self.access_point, self.deps.access
        if ap is None or desk is None:
            log.warning("credential_ignored", access_point_id=self.access_point_id)
            return
        plate = event.type == "plate_recognized"
        outcome = await desk.present(
            ap,
            "plate" if plate else "pass",
            event.plate if plate else event.code,
            self.deps.gateways.get(ap.partner_id),
            occurred_at=event.occurred_at,
        )
        if outcome.online is not None:
            self._seen(online=outcome.online)
        if outcome.opened:
            self.state.opens += 1
            self.state.last_command_id = outcome.command_id

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
        """Entry/exit: linked to the open it followed, told to that resident, audited."""
        at = self._when(event)
        published: dict[str, Any] | None = None
        user_id: str | None = None
        db = self.deps.db
        async with db.transaction() as conn:
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

    async def _open(self, msg: OpenAccessPoint) -> OpenOutcome:
        if msg.idempotency_key is not None:
            stored = await self.deps.commands.answer(msg.user_id, msg.idempotency_key)
            if stored is not None:
                status, body = stored
                if body.get("access_point_id", self.access_point_id) != self.access_point_id:
                    return OpenOutcome(
                        422,
                        problem(
                            422,
                            "idempotency-key-reused",
                            "Idempotency-Key reused",
                            "This Idempotency-Key was used for another access point.",
                        ),
                    )
                return OpenOutcome(status, body, replayed=True)
        ap = self.access_point
        if ap is None:
            return OpenOutcome(404, problem(404, "not-found", "Not found", "Unknown access point."))
        gateway = self.deps.gateways.get(ap.partner_id)
        if gateway is None:
            return OpenOutcome(
                502,
                problem(
                    502, "partner-unavailable", "Partner unavailable", "No adapter for partner."
                ),
            )
        requested = self.deps.clock()
        steps: list[tuple[str, float, dict[str, Any]]] = [
            ("requested", requested, {}),
            ("decided", requested, {"decision": "granted", "by": "rules"}),
        ]
        if self.deps.guard is not None:
            self.deps.guard.precheck(self.access_point_id)  # NotOwnerError: the asker forwards
        try:
            result = await gateway.open(
                ap.device_id,
                request_id=msg.command_id,
                traceparent=current_traceparent() or msg.traceparent,
            )
        except PartnerRefusedError as exc:
            self._seen(online=exc.reason != "device_offline")
            if exc.reason == "device_jammed":
                self.state.fault = "jammed"
            why = FAILURE_REASONS.get(exc.reason, exc.reason)
            failure = {"reason": why, "vendor_reason": exc.reason}
            steps.append(("failed", self.deps.clock(), failure))
            return await self._decide(
                msg,
                granted=False,
                reason=f"vendor_refused:{exc.reason}",
                status=403,
                body=problem(
                    403,
                    "vendor-refused",
                    "Refused by the device",
                    f"The device vendor refused to open: {exc.reason}.",
                    reason=exc.reason,
                    command_id=msg.command_id,
                ),
                steps=steps,
                command_status="failed",
            )
        except CircuitOpenError as exc:
            return self._failed(
                msg,
                503,
                "partner-circuit-open",
                "Partner unavailable",
                "The partner is failing; not calling it for a while.",
                exc.retry_after,
            )
        except BulkheadFullError:
            return self._failed(
                msg,
                503,
                "partner-busy",
                "Partner busy",
                "Too many calls to this partner are in flight.",
                1.0,
            )
        except PartnerTimeoutError:
            self.state.online = None
            steps.append(("failed", self.deps.clock(), {"reason": "timeout"}))
            await self._record_failure(msg, steps, "timeout")
            return self._failed(
                msg,
                504,
                "partner-timeout",
                "Partner timeout",
                "The partner did not answer in time.",
                None,
            )
        except PartnerUnavailableError as exc:
            self.state.online = None
            steps.append(("failed", self.deps.clock(), {"reason": "unavailable"}))
            await self._record_failure(msg, steps, "unavailable")
            return self._failed(
                msg, 502, "partner-unavailable", "Partner unavailable", str(exc) or "error", None
            )
        self._seen(online=True)
        self.state.fault = None
        self.state.opens += 1
        self.state.last_command_id = msg.command_id
        confirmed = self.deps.clock()
        accepted = confirmed
        if result.accepted_at is not None:
            accepted = min(max(result.accepted_at.timestamp(), requested), confirmed)
        steps.append(("accepted", accepted, {"vendor_command_id": result.vendor_command_id}))
        steps.append(("confirmed", confirmed, {}))
        body = {
            "status": "granted",
            "command_id": msg.command_id,
            "access_point_id": self.access_point_id,
            "vendor_command_id": result.vendor_command_id,
        }
        return await self._decide(
            msg,
            granted=True,
            reason="",
            status=200,
            body=body,
            steps=steps,
            command_status="confirmed",
            vendor_command_id=result.vendor_command_id,
        )

    def _seen(self, *, online: bool) -> None:
        now = self.deps.clock()
        self.state.online = online
        self.state.last_seen = now
        self.state.state_at = now

    def _failed(
        self,
        msg: OpenAccessPoint,
        status: int,
        kind: str,
        title: str,
        detail: str,
        retry_after: float | None,
    ) -> OpenOutcome:
        log.warning(
            "open_failed",
            access_point_id=self.access_point_id,
            command_id=msg.command_id,
            status=status,
            outcome=kind,
        )
        body = problem(status, kind, title, detail, command_id=msg.command_id)
        return OpenOutcome(status, body, retry_after=retry_after)

    async def _record_failure(
        self, msg: OpenAccessPoint, steps: list[tuple[str, float, dict[str, Any]]], reason: str
    ) -> None:
        """A command the vendor got but did not answer: failed, and the resident is told.

        Fast refusals that never reached the vendor (open circuit, full bulkhead) are not
        recorded: they cost nothing and leave nothing to follow.
        """
        now = self.deps.clock()
        access_point_id = self.access_point_id
        fencing = None if self.deps.guard is None else self.deps.guard.fencing(access_point_id)

        def commit(conn: UnitConnection) -> dict[str, Any]:
            if fencing is not None:  # a node that lost the shard must not mark it failed
                fencing(conn)
            commands.sync_put_command(
                conn,
                command_id=msg.command_id,
                access_point_id=access_point_id,
                user_id=msg.user_id,
                status="failed",
                reason=reason,
                at=now,
            )
            commands.sync_add_steps(conn, msg.command_id, steps)
            return events.sync_append(
                conn,
                user_id=msg.user_id,
                type="access.failed",
                access_point_id=access_point_id,
                command_id=msg.command_id,
                occurred_at=now,
                data={"reason": reason},
            )

        event = await self.deps.db.unit(commit)
        await self.deps.bus.publish(f"user:{msg.user_id}", event)

    async def _decide(
        self,
        msg: OpenAccessPoint,
        *,
        granted: bool,
        reason: str,
        status: int,
        body: dict[str, Any],
        steps: list[tuple[str, float, dict[str, Any]]],
        command_status: str,
        vendor_command_id: str | None = None,
    ) -> OpenOutcome:
        """Commit the command and its steps, the audit entry, the event and the answer, then
        notify.

        One ``Database.unit``: the whole transaction in one hop to the database thread, group
        committed with other doors' (the answer goes out only after that commit)."""
        now = self.deps.clock()
        event_type = "access.granted" if granted else "access.denied"
        access_point_id = self.access_point_id
        fencing = None if self.deps.guard is None else self.deps.guard.fencing(access_point_id)
        record = AuditRecord(
            at=now,
            actor=msg.on_behalf or f"user:{msg.user_id}",
            action="manual_open" if msg.on_behalf else "open",
            access_point_id=access_point_id,
            decision="granted" if granted else "denied",
            reason="; ".join(r for r in (reason, msg.note) if r),
            command_id=msg.command_id,
        )

        def commit(conn: UnitConnection) -> dict[str, Any]:
            if fencing is not None:
                fencing(conn)
            commands.sync_put_command(
                conn,
                command_id=msg.command_id,
                access_point_id=access_point_id,
                user_id=msg.user_id,
                status=command_status,
                reason=reason,
                at=now,
                vendor_command_id=vendor_command_id,
            )
            commands.sync_add_steps(conn, msg.command_id, steps)
            audit.sync_append(conn, record)
            event = events.sync_append(
                conn,
                user_id=msg.user_id,
                type=event_type,
                access_point_id=access_point_id,
                command_id=msg.command_id,
                occurred_at=now,
            )
            if msg.idempotency_key is not None:
                commands.sync_put_answer(
                    conn,
                    subject=msg.user_id,
                    key=msg.idempotency_key,
                    status=status,
                    body=body,
                    at=now,
                )
            return event

        event = await self.deps.db.unit(commit)
        await self.deps.bus.publish(f"user:{msg.user_id}", event)
        log.info(
            "access_decided",
            access_point_id=self.access_point_id,
            command_id=msg.command_id,
            outcome=event_type,
        )
        return OpenOutcome(status, body)


async def record_rule_denial(
    db: Database, bus: Bus, *, user_id: str, access_point_id: str, reason: str
) -> dict[str, Any]:
    """Audit (and tell the resident about) a request our rules refused; no device is asked."""
    now = time.time()
    record = AuditRecord(
        at=now,
        actor=f"user:{user_id}",
        action="open",
        access_point_id=access_point_id,
        decision="denied",
        reason=reason,
    )

    def commit(conn: UnitConnection) -> tuple[dict[str, Any], dict[str, Any]]:
        entry = audit.sync_append(conn, record)
        event = events.sync_append(
            conn,
            user_id=user_id,
            type="access.denied",
            access_point_id=access_point_id,
            command_id=None,
            occurred_at=now,
            data={"reason": reason},
        )
        return entry, event

    entry, event = await db.unit(commit)
    await bus.publish(f"user:{user_id}", event)
    return entry


__all__ = ("DeviceActor", "DeviceDeps", "command_id_for", "problem", "record_rule_denial")
