"""The access desk: what happens when a credential is presented at an access point.

A plate recognised by a barrier camera or a guest-pass code typed at a keypad is decided by our
rules (the vehicle's owner's right and schedule; the pass's window, uses and access points),
then, if granted, opened through the partner gateway. One transaction records the command, the
hash-chained audit entry (actor = the credential: ``vehicle:<id>``, ``pass:<id>``, or the
unknown credential), the resident's event, and gives a pass use back when the device did not
open. The event then goes over the bus to the resident's sockets (and push, if none is live).

The device actor of the access point calls ``present`` one message at a time, as for opens.
A device where unknown codes keep coming is locked for a while (``KeypadLockout``): its codes
are then denied with reason ``locked_out`` without being looked up.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import structlog

from propdev.access.errors import InvalidPlateError
from propdev.access.lockout import LOCKED_OUT, KeypadLockout
from propdev.access.passes import GuestPasses, give_back
from propdev.access.rules import AccessRules, Clock
from propdev.access.vehicles import Vehicles, normalise_plate, plate_hint, plate_key
from propdev.partners import (
    BulkheadFullError,
    CircuitOpenError,
    PartnerRefusedError,
    PartnerTimeoutError,
    PartnerUnavailableError,
)
from propdev.storage import Database, audit, commands, events
from propdev.storage.audit import AuditRecord

if TYPE_CHECKING:
    from propdev.partners import PartnerGateway
    from propdev.registry import Bus
    from propdev.storage.directory import AccessPoint

log = structlog.get_logger()

PLATE = "plate"
PASS = "pass"
# A recognition or keypad entry older than this is not acted upon (a delayed callback must
# not open a barrier for a car that has long gone).
MAX_EVENT_AGE = 120.0


@dataclass(frozen=True, slots=True)
class Presentation:
    """The outcome of one presented credential."""

    granted: bool
    reason: str
    actor: str
    audit_id: int
    command_id: str | None = None
    user_id: str | None = None
    event: dict[str, Any] | None = None
    opened: bool = False
    online: bool | None = None  # what the vendor's answer says of the device; None: no news


@dataclass(frozen=True, slots=True)
class _Opening:
    opened: bool
    reason: str
    online: bool | None


class AccessDesk:
    """Decides, opens and records credential presentations."""

    def __init__(
        self,
        db: Database,
        bus: Bus,
        rules: AccessRules,
        passes: GuestPasses,
        vehicles: Vehicles,
        *,
        clock: Clock = time.time,
        lockout: KeypadLockout | None = None,
    ) -> None:
        self.db = db
        self.bus = bus
        self.rules = rules
        self.passes = passes
        self.vehicles = vehicles
        self.clock = clock
        self.lockout = lockout or KeypadLockout()

    async def present(
        self,
        point: AccessPoint,
        kind: str,
        value: object,
        gateway: PartnerGateway | None,
        *,
        occurred_at: float | None = None,
        traceparent: str | None = None,
    ) -> Presentation:
        now = self.clock()
        stale = occurred_at is not None and now - occurred_at > MAX_EVENT_AGE
        if kind == PLATE:
            return await self._plate(point, value, gateway, now, stale, traceparent)
        if kind == PASS:
            return await self._pass(point, value, gateway, now, stale, traceparent)
        raise ValueError(f"unknown credential kind {kind!r}")

    async def _plate(
        self,
        point: AccessPoint,
        value: object,
        gateway: PartnerGateway | None,
        now: float,
        stale: bool,
        traceparent: str | None,
    ) -> Presentation:
        try:
            plate = normalise_plate(value)
        except InvalidPlateError:
            return await self._record(
                point, now, actor="plate:unreadable", reason="plate_unreadable"
            )
        vehicle = await self.vehicles.find(plate)
        if vehicle is None:
            # The key, not the plate: operators can see repeats without the audit holding plates.
            return await self._record(
                point, now, actor=f"plate:{plate_key(plate)[:16]}", reason="unknown_plate"
            )
        actor = f"vehicle:{vehicle.id}"
        data = {"credential": "vehicle", "vehicle_id": vehicle.id, "plate_hint": plate_hint(plate)}
        decision = await self.rules.decide(vehicle.owner_id, point.id, at=now)
        reason = "stale_event" if stale else decision.reason
        if reason:
            return await self._record(
                point,
                now,
                actor=actor,
                reason=reason,
                user_id=vehicle.owner_id,
                event=("access.denied", {**data, "reason": reason}),
            )
        command_id = str(uuid.uuid4())
        opening = await self._open(point, gateway, command_id, traceparent)
        return await self._record(
            point,
            now,
            actor=actor,
            reason=opening.reason,
            granted=opening.opened,
            user_id=vehicle.owner_id,
            command_id=command_id,
            online=opening.online,
            event=(
                ("access.automatic", data)
                if opening.opened
                else ("access.denied", {**data, "reason": opening.reason})
            ),
        )

    async def _pass(
        self,
        point: AccessPoint,
        value: object,
        gateway: PartnerGateway | None,
        now: float,
        stale: bool,
        traceparent: str | None,
    ) -> Presentation:
        if stale:
            return await self._record(point, now, actor="pass:unchecked", reason="stale_event")
        if self.lockout.refuse(point.id, now) is not None:  # guessing here: not even looked up
            return await self._record(point, now, actor="pass:unchecked", reason=LOCKED_OUT)
        claim = await self.passes.claim(value, point.id, at=now)
        guest_pass = claim.guest_pass
        if guest_pass is None:
            self.lockout.wrong(point.id, now)
            return await self._record(point, now, actor="pass:unknown", reason=claim.reason)
        self.lockout.right(point.id)
        actor = f"pass:{guest_pass.id}"
        if not claim.granted:
            return await self._record(
                point,
                now,
                actor=actor,
                reason=claim.reason,
                user_id=guest_pass.owner_id,
                event=("pass.denied", {"pass_id": guest_pass.id, "reason": claim.reason}),
            )
        command_id = str(uuid.uuid4())
        opening = await self._open(point, gateway, command_id, traceparent)
        used = {
            "pass_id": guest_pass.id,
            "uses": guest_pass.uses if opening.opened else guest_pass.uses - 1,
            "max_uses": guest_pass.max_uses,
        }
        return await self._record(
            point,
            now,
            actor=actor,
            reason=opening.reason,
            granted=opening.opened,
            user_id=guest_pass.owner_id,
            command_id=command_id,
            online=opening.online,
            give_back_pass=None if opening.opened else guest_pass.id,
            event=(
                ("pass.used", used)
                if opening.opened
                else ("pass.denied", {**used, "reason": opening.reason})
            ),
        )

    async def _open(
        self,
        point: AccessPoint,
        gateway: PartnerGateway | None,
        command_id: str,
        traceparent: str | None,
    ) -> _Opening:
        if gateway is None:
            return _Opening(False, "partner_unavailable", None)
        try:
            await gateway.open(point.device_id, request_id=command_id, traceparent=traceparent)
        except PartnerRefusedError as exc:
            return _Opening(False, f"vendor_refused:{exc.reason}", exc.reason != "device_offline")
        except CircuitOpenError:
            return _Opening(False, "partner_circuit_open", None)
        except BulkheadFullError:
            return _Opening(False, "partner_busy", None)
        except PartnerTimeoutError:
            return _Opening(False, "partner_timeout", None)
        except PartnerUnavailableError:
            return _Opening(False, "partner_unavailable", None)
        return _Opening(True, "", True)

    async def _record(
        self,
        point: AccessPoint,
        now: float,
        *,
        actor: str,
        reason: str,
        granted: bool = False,
        user_id: str | None = None,
        command_id: str | None = None,
        online: bool | None = None,
        give_back_pass: str | None = None,
        event: tuple[str, dict[str, Any]] | None = None,
    ) -> Presentation:
        """One transaction: command, audit entry, the resident's event, a pass use given back."""
        async with self.db.transaction() as conn:
            if command_id is not None and user_id is not None:
                await commands.put_command(
                    conn,
                    command_id=command_id,
                    access_point_id=point.id,
                    user_id=user_id,
                    status="confirmed" if granted else "failed",
                    reason=reason,
                    at=now,
                )
            entry = await audit.append(
                conn,
                self.db.dialect,
                AuditRecord(
                    at=now,
                    actor=actor,
                    action="open",
                    access_point_id=point.id,
                    decision="granted" if granted else "denied",
                    reason=reason,
                    command_id=command_id,
                ),
            )
            if give_back_pass is not None:
                await give_back(conn, give_back_pass)
            stored = None
            if event is not None and user_id is not None:
                stored = await events.append(
                    conn,
                    user_id=user_id,
                    type=event[0],
                    access_point_id=point.id,
                    command_id=command_id,
                    occurred_at=now,
                    data=event[1],
                )
        if stored is not None and user_id is not None:
            await self.bus.publish(f"user:{user_id}", stored)
        log.info(
            "credential_decided",
            access_point_id=point.id,
            actor=actor,
            decision="granted" if granted else "denied",
            reason=reason,
            command_id=command_id,
        )
        return Presentation(
            granted=granted,
            reason=reason,
            actor=actor,
            audit_id=int(entry["id"]),
            command_id=command_id,
            user_id=user_id,
            event=stored,
            opened=granted,
            online=online,
        )
