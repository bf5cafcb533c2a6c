"""DeviceActor: one per access point; the only writer of that door's commands.

Opens of one door are handled one at a time, so the idempotency check and the command it
guards cannot race. Our rules were applied before the message was sent; the vendor's answer
is the confirmation. A vendor outage is an answer to the asker (502/503/504), never a crash.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import structlog

from propdev.actors.actor import Actor
from propdev.actors.messages import DeviceSnapshot, OpenAccessPoint, OpenOutcome
from propdev.partners import (
    BulkheadFullError,
    CircuitOpenError,
    PartnerRefusedError,
    PartnerTimeoutError,
    PartnerUnavailableError,
)
from propdev.storage import audit, commands, events
from propdev.storage.audit import AuditRecord

if TYPE_CHECKING:
    from propdev.access import AccessDesk
    from propdev.partners import PartnerGateway
    from propdev.registry import Bus, ShardGuard
    from propdev.storage import Database
    from propdev.storage.directory import AccessPoint, Directory

log = structlog.get_logger()

PROBLEM_BASE = "https://propdev.example/problems/"


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
        return str(uuid.uuid4())
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"propdev:{user_id}:{idempotency_key}"))


@dataclass(slots=True)
class DeviceDeps:
    """What device actors share: built once per node."""

    db: Database
    directory: Directory
    gateways: dict[str, PartnerGateway]
    bus: Bus
    guard: ShardGuard | None = None  # in a cluster: may this node act for the device?
    access: AccessDesk | None = None  # decides presented credentials (plates, guest passes)
    commands: commands.Commands = field(init=False)

    def __post_init__(self) -> None:
        self.commands = commands.Commands(self.db)


@dataclass(slots=True)
class DeviceState:
    online: bool | None = None
    last_seen: float | None = None
    opens: int = 0
    last_command_id: str | None = None


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
        await self.deps.db.execute(
            "INSERT INTO device_state (access_point_id, state, updated_at) VALUES (:id, :s, :t) "
            "ON CONFLICT (access_point_id) DO UPDATE SET state = :s, updated_at = :t",
            id=self.access_point_id,
            s=json.dumps(
                {
                    "online": self.state.online,
                    "last_seen": self.state.last_seen,
                    "opens": self.state.opens,
                    "last_command_id": self.state.last_command_id,
                }
            ),
            t=time.time(),
        )

    async def receive(self, message: object) -> object:
        if isinstance(message, OpenAccessPoint):
            return await self._open(message)
        if isinstance(message, DeviceSnapshot):
            return {
                "access_point_id": self.access_point_id,
                "online": self.state.online,
                "last_seen": self.state.last_seen,
                "opens": self.state.opens,
            }
        raise TypeError(f"DeviceActor cannot handle {type(message).__name__}")

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
        if self.deps.guard is not None:
            self.deps.guard.precheck(self.access_point_id)  # NotOwnerError: the asker forwards
        try:
            result = await gateway.open(
                ap.device_id, request_id=msg.command_id, traceparent=msg.traceparent
            )
        except PartnerRefusedError as exc:
            self._seen(online=exc.reason != "device_offline")
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
                ),
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
            return self._failed(
                msg, 502, "partner-unavailable", "Partner unavailable", str(exc) or "error", None
            )
        self._seen(online=True)
        self.state.opens += 1
        self.state.last_command_id = msg.command_id
        body = {
            "status": "granted",
            "command_id": msg.command_id,
            "access_point_id": self.access_point_id,
            "vendor_command_id": result.vendor_command_id,
        }
        return await self._decide(msg, granted=True, reason="", status=200, body=body)

    def _seen(self, *, online: bool) -> None:
        self.state.online = online
        self.state.last_seen = time.time()

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
        return OpenOutcome(status, problem(status, kind, title, detail), retry_after=retry_after)

    async def _decide(
        self, msg: OpenAccessPoint, *, granted: bool, reason: str, status: int, body: dict[str, Any]
    ) -> OpenOutcome:
        """Commit the command, the audit entry, the event and the answer, then notify."""
        now = time.time()
        event_type = "access.granted" if granted else "access.denied"
        db = self.deps.db
        async with db.transaction() as conn:
            if self.deps.guard is not None:
                await self.deps.guard.check(conn, self.access_point_id)  # fencing
            await commands.put_command(
                conn,
                command_id=msg.command_id,
                access_point_id=self.access_point_id,
                user_id=msg.user_id,
                status="confirmed" if granted else "refused",
                reason=reason,
                at=now,
            )
            await audit.append(
                conn,
                db.dialect,
                AuditRecord(
                    at=now,
                    actor=f"user:{msg.user_id}",
                    action="open",
                    access_point_id=self.access_point_id,
                    decision="granted" if granted else "denied",
                    reason=reason,
                    command_id=msg.command_id,
                ),
            )
            event = await events.append(
                conn,
                user_id=msg.user_id,
                type=event_type,
                access_point_id=self.access_point_id,
                command_id=msg.command_id,
                occurred_at=now,
            )
            if msg.idempotency_key is not None:
                await commands.put_answer(
                    conn,
                    subject=msg.user_id,
                    key=msg.idempotency_key,
                    status=status,
                    body=body,
                    at=now,
                )
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
    async with db.transaction() as conn:
        entry = await audit.append(
            conn,
            db.dialect,
            AuditRecord(
                at=now,
                actor=f"user:{user_id}",
                action="open",
                access_point_id=access_point_id,
                decision="denied",
                reason=reason,
            ),
        )
        event = await events.append(
            conn,
            user_id=user_id,
            type="access.denied",
            access_point_id=access_point_id,
            command_id=None,
            occurred_at=now,
            data={"reason": reason},
        )
    await bus.publish(f"user:{user_id}", event)
    return entry


__all__ = ("DeviceActor", "DeviceDeps", "command_id_for", "problem", "record_rule_denial")
