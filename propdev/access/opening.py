"""The opening pipeline: every way of opening a door goes through ``Opening.open``.

An app tap, an operator's manual open, a plate read by a barrier camera, a code typed at a
keypad (each of the last two by REST callback or gRPC stream) all come to the door's device
actor, which calls ``open`` one message at a time, so that an idempotency check and the command
it guards cannot race. The steps, the same for every credential:

1. **decide**: the stored answer of an earlier request with the same ``Idempotency-Key``; our
   rules (a right and its schedule, a vehicle's owner's right, a pass's window, uses and access
   points, the keypad lockout, a stale event); an operator's manual open is decided by the
   operator.
2. **command** the partner through its gateway (our command id as the vendor's idempotency key;
   the gateway owns the breaker, the bulkhead and the timeout).
3. **record**, in one ``Database.unit`` (fenced in a cluster): the command and its steps when
   one was sent, the hash-chained audit entry, the resident's event, a pass use given back when
   the device did not open, the outcome under the idempotency key.
4. **publish** the event to the resident (their sockets, or a push: its outbox rows are
   written in step 3's unit, ``propdev.push``).

The result is a domain ``OpenOutcome`` (granted, refused or failed, with a reason code), never
an HTTP status: ``propdev.http.open_outcomes`` maps it at the edge.

``open`` runs the four steps in one go. ``start`` runs step 1 and stops before the command,
with a ``PendingOpen`` whose ``command()`` (step 2) and ``record()`` (steps 3 and 4) the caller
runs itself: the device actor asks a vendor that confirms later (acme's ``command_result``)
outside its mailbox, and records back inside it, so that it does not hold its mailbox while
the vendor works (see ``propdev.actors.device``). Same steps, same order, same transaction.
"""

from __future__ import annotations

import enum
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import structlog

from propdev.access.errors import InvalidPlateError
from propdev.access.lockout import LOCKED_OUT, KeypadLockout, Lockout
from propdev.access.outcome import (
    OpenOutcome,
    Reason,
    Result,
    failed,
    granted,
    refused,
    stored_answer,
)
from propdev.access.passes import GuestPasses, sync_give_back
from propdev.access.rules import AccessRules, Clock
from propdev.access.trail import audit_decision, open_action
from propdev.access.vehicles import Vehicles, normalise_plate, plate_hint, plate_key
from propdev.ids import new_uuid
from propdev.partners import (
    BulkheadFullError,
    CircuitOpenError,
    PartnerRefusedError,
    PartnerTimeoutError,
    PartnerUnavailableError,
)
from propdev.push import sync_enqueue
from propdev.storage import audit, commands, events
from propdev.storage.audit import AuditRecord

if TYPE_CHECKING:
    from propdev.partners import OpenResult, PartnerGateway
    from propdev.storage import Database, UnitConnection
    from propdev.storage.directory import AccessPoint

log = structlog.get_logger()

# A recognition or keypad entry older than this is not acted upon (a delayed callback must
# not open a barrier for a car that has long gone).
MAX_EVENT_AGE = 120.0

Fence = Callable[["UnitConnection"], None]
Steps = list[tuple[str, float, dict[str, Any]]]


class Publisher(Protocol):
    """Where a resident's event goes once recorded (the bus)."""

    async def publish(self, channel: str, message: dict[str, Any]) -> None: ...


class Via(enum.StrEnum):
    """How the request to open came."""

    APP = "app"  # a resident's tap in the app
    MANUAL = "manual"  # an operator's manual open, with a stated reason
    PLATE = "plate"  # a plate read by the barrier's camera
    CODE = "code"  # a guest-pass code typed at a keypad (or its QR payload)


@dataclass(frozen=True, slots=True)
class OpenRequest:
    """One request to open an access point, whatever the credential."""

    via: Via
    subject: str | None = None  # APP: the resident's id; MANUAL: the operator's id
    value: object = None  # PLATE: the plate as read; CODE: the code as typed
    command_id: str | None = None  # APP/MANUAL: the caller's (stable for a keyed request)
    idempotency_key: str | None = None  # APP
    note: str = ""  # MANUAL: the operator's reason, kept in the audit entry
    occurred_at: float | None = None  # PLATE/CODE: when the device saw it
    traceparent: str | None = None


# Event types told to the resident, by credential: (granted, refused, failed).
_EVENT_TYPES = {
    Via.APP: ("access.granted", "access.denied", "access.failed"),
    Via.MANUAL: ("access.granted", "access.denied", "access.failed"),
    Via.PLATE: ("access.automatic", "access.denied", "access.denied"),
    Via.CODE: ("pass.used", "pass.denied", "pass.denied"),
}


@dataclass(slots=True)
class _Decision:
    """Step 1's answer: who is opening (the audit's actor), whom it concerns, and, unless
    ``reason`` is set, that the partner is to be asked."""

    actor: str
    user_id: str | None = None  # whose event it is (and whose command)
    reason: str = ""  # a refusal by our rules; empty: go on
    data: dict[str, Any] = field(default_factory=dict)  # the event's data
    pass_id: str | None = None  # a guest pass whose use was taken (given back on failure)
    pass_uses: tuple[int, int] | None = None  # (uses with this one, max_uses)


def command_id_for(user_id: str, idempotency_key: str | None) -> str:
    """A stable command id for a keyed request (so a retry reuses the vendor's key), else new."""
    if idempotency_key is None:
        return str(new_uuid())  # a uuid4, from a pooled draw (no system call per open)
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"propdev:{user_id}:{idempotency_key}"))


class Opening:
    """Decides, commands, records and publishes opens; one per node, shared by device actors."""

    def __init__(
        self,
        db: Database,
        publisher: Publisher,
        rules: AccessRules,
        passes: GuestPasses,
        vehicles: Vehicles,
        *,
        clock: Clock = time.time,
        lockout: Lockout | None = None,
    ) -> None:
        self.db = db
        self.publisher = publisher
        self.rules = rules
        self.passes = passes
        self.vehicles = vehicles
        self.clock = clock
        self.lockout: Lockout = lockout or KeypadLockout()
        self.answers = commands.Commands(db)

    async def open(
        self,
        point: AccessPoint,
        request: OpenRequest,
        gateway: PartnerGateway | None,
        *,
        fence: Fence | None = None,
        precheck: Callable[[], None] | None = None,
    ) -> OpenOutcome:
        """Open ``point`` for ``request``: the one path of every open (``start``, then the
        pending open's ``command`` and ``record`` at once).

        ``fence`` checks, inside the recording transaction, that this node still owns the
        device (a cluster); ``precheck`` is the same check on the loop before the partner is
        asked (it raises for the asker to forward)."""
        started = await self.start(point, request, gateway, fence=fence, precheck=precheck)
        if isinstance(started, OpenOutcome):
            return started
        return await started.record(await started.command())

    async def start(
        self,
        point: AccessPoint,
        request: OpenRequest,
        gateway: PartnerGateway | None,
        *,
        fence: Fence | None = None,
        precheck: Callable[[], None] | None = None,
    ) -> OpenOutcome | PendingOpen:
        """Step 1: the outcome when the partner is not to be asked (an idempotent replay; a
        refusal by our rules, recorded), else the ``PendingOpen`` to command and record."""
        if request.idempotency_key is not None and request.subject is not None:
            replay = await self._replay(point, request)
            if replay is not None:
                return replay
        now = self.clock()
        decision = await self._decide(point, request, now)
        if decision.reason:
            return await self._record(
                point, request, decision, now, refused(point.id, decision.reason), fence=fence
            )
        command_id = request.command_id or str(new_uuid())
        if precheck is not None:
            precheck()  # NotOwnerError: the asker forwards
        steps: Steps = [
            ("requested", now, {}),
            ("decided", now, {"decision": "granted", "by": _decided_by(request.via)}),
        ]
        return PendingOpen(self, point, request, decision, now, command_id, steps, gateway, fence)

    # -- 1. decide ---------------------------------------------------------------------------

    async def _replay(self, point: AccessPoint, request: OpenRequest) -> OpenOutcome | None:
        assert request.subject is not None and request.idempotency_key is not None
        stored = await self.answers.answer(
            request.subject, request.idempotency_key, now=self.clock()
        )
        if stored is None:
            return None
        first = stored_answer(*stored, access_point_id=point.id)
        if first.access_point_id != point.id:
            return refused(point.id, Reason.IDEMPOTENCY_KEY_REUSED)
        return first.as_replay()

    async def _decide(self, point: AccessPoint, request: OpenRequest, now: float) -> _Decision:
        stale = request.occurred_at is not None and now - request.occurred_at > MAX_EVENT_AGE
        if request.via is Via.APP:
            assert request.subject is not None
            user = request.subject
            judged = await self.rules.decide(user, point.id, at=now)
            return _Decision(f"user:{user}", user, judged.reason)
        if request.via is Via.MANUAL:
            assert request.subject is not None
            return _Decision(f"operator:{request.subject}", request.subject)
        if request.via is Via.PLATE:
            return await self._plate(point, request.value, now, stale)
        if request.via is Via.CODE:
            return await self._code(point, request.value, now, stale)
        raise ValueError(f"unknown credential {request.via!r}")

    async def _plate(self, point: AccessPoint, value: object, now: float, stale: bool) -> _Decision:
        try:
            plate = normalise_plate(value)
        except InvalidPlateError:
            return _Decision("plate:unreadable", reason=Reason.PLATE_UNREADABLE)
        vehicle = await self.vehicles.find(plate)
        if vehicle is None:
            # The key, not the plate: operators can see repeats without the audit holding plates.
            return _Decision(f"plate:{plate_key(plate)[:16]}", reason=Reason.UNKNOWN_PLATE)
        data = {"credential": "vehicle", "vehicle_id": vehicle.id, "plate_hint": plate_hint(plate)}
        judged = await self.rules.decide(vehicle.owner_id, point.id, at=now)
        reason = Reason.STALE_EVENT if stale else judged.reason
        return _Decision(f"vehicle:{vehicle.id}", vehicle.owner_id, reason, data)

    async def _code(self, point: AccessPoint, value: object, now: float, stale: bool) -> _Decision:
        if stale:
            return _Decision("pass:unchecked", reason=Reason.STALE_EVENT)
        if (
            await self.lockout.refuse(point.id, now) is not None
        ):  # guessing here: not even looked up
            return _Decision("pass:unchecked", reason=LOCKED_OUT)
        claim = await self.passes.claim(value, point.id, at=now)
        guest_pass = claim.guest_pass
        if guest_pass is None:
            await self.lockout.wrong(point.id, now)
            return _Decision("pass:unknown", reason=claim.reason)
        await self.lockout.right(point.id)
        decision = _Decision(
            f"pass:{guest_pass.id}",
            guest_pass.owner_id,
            claim.reason,
            {"pass_id": guest_pass.id},
        )
        if claim.granted:  # a use was taken
            decision.pass_id = guest_pass.id
            decision.pass_uses = (guest_pass.uses, guest_pass.max_uses)
        return decision

    # -- 2. command --------------------------------------------------------------------------

    async def _command(
        self,
        point: AccessPoint,
        gateway: PartnerGateway | None,
        command_id: str,
        traceparent: str | None,
        steps: Steps,
        requested: float,
    ) -> OpenOutcome:
        """Ask the partner; its answer (or silence) as an outcome, the command's steps added."""
        ap = point.id
        if gateway is None:
            return failed(
                ap, Reason.NO_PARTNER, command_id=command_id, detail="No adapter for partner."
            )
        try:
            result: OpenResult = await gateway.open(
                point.device_id, request_id=command_id, traceparent=traceparent
            )
        except PartnerRefusedError as exc:
            online = exc.reason != "device_offline"
            outcome = refused(
                ap,
                f"{Reason.VENDOR_REFUSED}:{exc.reason}",
                command_id=command_id,
                vendor_reason=exc.reason,
                online=online,
            )
            why = outcome.lifecycle_reason
            steps.append(("failed", self.clock(), {"reason": why, "vendor_reason": exc.reason}))
            return outcome
        except CircuitOpenError as exc:  # not sent: no command to follow
            return failed(
                ap, Reason.PARTNER_CIRCUIT_OPEN, command_id=command_id, retry_after=exc.retry_after
            )
        except BulkheadFullError:  # not sent either
            return failed(ap, Reason.PARTNER_BUSY, command_id=command_id, retry_after=1.0)
        except PartnerTimeoutError:
            steps.append(("failed", self.clock(), {"reason": "timeout"}))
            return failed(ap, Reason.PARTNER_TIMEOUT, command_id=command_id)
        except PartnerUnavailableError as exc:
            steps.append(("failed", self.clock(), {"reason": "unavailable"}))
            return failed(
                ap, Reason.PARTNER_UNAVAILABLE, command_id=command_id, detail=str(exc) or "error"
            )
        confirmed = self.clock()
        accepted = confirmed
        if result.accepted_at is not None:
            accepted = min(max(result.accepted_at.timestamp(), requested), confirmed)
        steps.append(("accepted", accepted, {"vendor_command_id": result.vendor_command_id}))
        steps.append(("confirmed", confirmed, {}))
        return granted(ap, command_id, result.vendor_command_id)

    # -- 3. record, 4. publish ---------------------------------------------------------------

    async def _record(
        self,
        point: AccessPoint,
        request: OpenRequest,
        decision: _Decision,
        now: float,
        outcome: OpenOutcome,
        *,
        steps: Steps | None = None,
        fence: Fence | None = None,
    ) -> OpenOutcome:
        """One unit: command + steps (if one was sent), audit entry, the resident's event, a
        pass use given back, the outcome under its idempotency key; then the event is published."""
        at = self.clock()
        user_id = decision.user_id
        sent = steps is not None and len(steps) > 2  # the partner got the command
        command_id = outcome.command_id if sent else None
        opened = outcome.granted
        record = AuditRecord(
            at=at,
            actor=decision.actor,
            action=open_action(request.via is Via.MANUAL),
            access_point_id=point.id,
            decision=audit_decision(outcome.result),
            reason="; ".join(r for r in (outcome.reason, request.note) if r),
            command_id=command_id,
            subject=user_id,
        )
        event = _event(request.via, decision, outcome)
        give_back = decision.pass_id if decision.pass_id is not None and not opened else None
        keep_answer = (
            request.idempotency_key is not None
            and request.subject is not None
            and sent
            and outcome.result is not Result.FAILED
        )

        def commit(conn: UnitConnection) -> tuple[dict[str, Any], dict[str, Any] | None]:
            if fence is not None:  # a node that lost the shard must not write
                fence(conn)
            if sent and command_id is not None and user_id is not None and steps is not None:
                commands.sync_put_command(
                    conn,
                    command_id=command_id,
                    access_point_id=point.id,
                    user_id=user_id,
                    status="confirmed" if opened else "failed",
                    reason="" if opened else outcome.lifecycle_reason,
                    at=at,
                    vendor_command_id=outcome.vendor_command_id,
                )
                commands.sync_add_steps(conn, command_id, steps)
            entry = audit.sync_append(conn, record)
            if give_back is not None:
                sync_give_back(conn, give_back)
            stored = None
            if user_id is not None and event is not None:
                stored = events.sync_append(
                    conn,
                    user_id=user_id,
                    type=event[0],
                    access_point_id=point.id,
                    command_id=command_id,
                    occurred_at=at,
                    data=event[1],
                )
                sync_enqueue(conn, stored, user_id=user_id, now=at)
            if keep_answer:
                assert request.subject is not None and request.idempotency_key is not None
                commands.sync_put_answer(
                    conn,
                    subject=request.subject,
                    key=request.idempotency_key,
                    status=0,  # 0: the body is an OpenOutcome (older rows: HTTP status + body)
                    body=outcome.to_dict(),
                    at=at,
                )
            return entry, stored

        _entry, stored = await self.db.unit(commit)
        if stored is not None and user_id is not None:
            await self.publisher.publish(f"user:{user_id}", stored)
        log.info(
            "access_decided",
            access_point_id=point.id,
            via=request.via.value,
            by=decision.actor,  # "actor" is the device actor's, bound in the log context
            result=outcome.result.value,
            reason=outcome.reason,
            command_id=command_id,
        )
        return outcome


@dataclass(slots=True, eq=False)
class PendingOpen:
    """An open decided (step 1) whose partner is yet to be asked: ``command()`` asks it (step
    2: the gateway's timeout, breaker and bulkhead bound the whole answer, an asynchronous
    vendor's confirmation included) and may run anywhere; ``record(outcome)`` (steps 3 and 4)
    runs where the door's writes are ordered (its device actor). ``interrupted()`` is the
    outcome to record when the answer will not be waited for (the actor stops)."""

    opening: Opening
    point: AccessPoint
    request: OpenRequest
    decision: _Decision
    now: float
    command_id: str
    steps: Steps
    gateway: PartnerGateway | None
    fence: Fence | None

    async def command(self) -> OpenOutcome:
        """The partner's answer (or silence) as an outcome; its steps are added."""
        return await self.opening._command(
            self.point,
            self.gateway,
            self.command_id,
            self.request.traceparent,
            self.steps,
            self.now,
        )

    async def record(self, outcome: OpenOutcome) -> OpenOutcome:
        """Record ``outcome`` (one unit, fenced), then publish the resident's event."""
        return await self.opening._record(
            self.point,
            self.request,
            self.decision,
            self.now,
            outcome,
            steps=self.steps,
            fence=self.fence,
        )

    def interrupted(self) -> OpenOutcome:
        """A failed outcome for an open whose answer nobody will wait for: the command may
        have been sent, so its lifecycle says ``failed``/``interrupted`` (a retry may help)."""
        self.steps.append(("failed", self.opening.clock(), {"reason": "interrupted"}))
        return failed(self.point.id, Reason.DEVICE_TIMEOUT, command_id=self.command_id)


def _decided_by(via: Via) -> str:
    return "operator" if via is Via.MANUAL else "rules"


def _event(
    via: Via, decision: _Decision, outcome: OpenOutcome
) -> tuple[str, dict[str, Any]] | None:
    """The resident's event for this outcome: its type and data (None: nobody to tell)."""
    if decision.user_id is None:
        return None
    granted_type, refused_type, failed_type = _EVENT_TYPES[via]
    data = dict(decision.data)
    if decision.pass_uses is not None:
        uses, max_uses = decision.pass_uses
        data["uses"] = uses if outcome.granted else uses - 1
        data["max_uses"] = max_uses
    if outcome.granted:
        return granted_type, data
    data["reason"] = outcome.reason
    kind = refused_type if outcome.result is Result.REFUSED else failed_type
    return kind, data


__all__ = (
    "MAX_EVENT_AGE",
    "OpenRequest",
    "Opening",
    "PendingOpen",
    "Publisher",
    "Via",
    "command_id_for",
)
