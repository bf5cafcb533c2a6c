"""Partner events in: validate each, dedupe, apply to the device actors in order.

One batch (``POST /partner/v1/events``, or the embedded simulator's direct delivery) becomes:

1. each event validated on its own: a bad one is rejected with its reason, the rest go on;
2. ``command_result`` events first, handed to the partner's adapter (the open waits for it
   outside the device actor's mailbox; the actor records it once it has it) on the node where
   that open waits (in a cluster, the device's owner); deduplicated here;
3. state reports (online/offline, faults: ``DeviceReports``) to their device's actor, which
   applies them beside an open in flight instead of behind it;
4. every other event (credentials, passages) to its device's actor, one ask per device with
   that device's events in batch order, in the actor's mailbox order; devices (and a
   device's reports) in parallel. The actor deduplicates by ``(partner, event_id)`` in the
   transaction that applies the event.

Why reports go beside the open: the answer to a batch waits until its events are applied, and
an asynchronous vendor (acme) delivers its callbacks in order, one batch after the other. A
report it posts while our open of that device waits for the vendor's ``command_result`` would
wait behind the open, and the result, queued at the vendor behind that report, would come only
once the open had timed out (a 504 for a door the vendor opened). A report may overtake: it
opens nothing, links to no open, writes no audit entry, and an older report than the last
applied changes nothing. Passages and credentials may not: an entry links to the open it
follows (applied after that open's confirmation is recorded), a plate or a code is an open of
its own; they keep the device's order. They do not wait for an open in flight either: the device
actor does not hold its mailbox while a vendor confirms later (``propdev.actors.device``), so
they are applied at once, and an entry naming an open still pending is kept for it and linked
once that open is recorded. (Acknowledging a batch once stored, before the actors apply it,
would free every event type, but the answer would no longer say what became of each event,
which partners and the gRPC acks rely on.)
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog

from propdev.devices.errors import IngestUnavailableError, InvalidEventError
from propdev.devices.events import (
    COMMAND_RESULT,
    REPORTS,
    DeviceEvent,
    DeviceEvents,
    DeviceReports,
    parse_event,
)
from propdev.storage import Database, partner_events

log = structlog.get_logger()

MAX_EVENTS = 500

Confirm = Callable[[str, DeviceEvent], Awaitable[bool]]
"""``confirm(access_point_id, event)``: a ``command_result`` to the partner's adapter whose open
waits for it (in a cluster, on the device's owner node); False if none takes it."""

Ask = Callable[[str, object, float], Awaitable[object]]
"""``ask(target, message, timeout)``: the node's ask (in a cluster, routed to the shard's owner)."""


@dataclass(slots=True)
class IngestResult:
    """The answer to a batch: counts, and each rejected event with its index and reason."""

    accepted: int = 0
    duplicates: int = 0
    rejected: list[dict[str, Any]] = field(default_factory=list)
    outcomes: dict[int, str] = field(default_factory=dict)
    """Per index of the batch: ``accepted``, ``duplicate`` or ``rejected:<reason>`` (gRPC acks)."""

    def as_dict(self) -> dict[str, Any]:
        return {"accepted": self.accepted, "duplicates": self.duplicates, "rejected": self.rejected}


class PartnerEventIngest:
    """Applies partners' event batches; shared by the HTTP route and embedded simulators."""

    def __init__(
        self,
        *,
        db: Database,
        ask: Ask,
        confirm: Confirm,
        ask_timeout: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._db = db
        self._route = ask
        self._confirm = confirm
        self._ask_timeout = ask_timeout
        self._clock = clock

    async def ingest(self, partner_id: str, raw_events: Sequence[Any]) -> IngestResult:
        """Apply ``raw_events`` of ``partner_id``; raises ``IngestUnavailableError`` when a
        device actor did not answer (the partner retries; replays are duplicates)."""
        result = IngestResult()
        now = self._clock()
        devices = await self._devices_of(partner_id)
        results: list[tuple[int, DeviceEvent, str]] = []
        reports: dict[str, list[tuple[int, DeviceEvent]]] = {}
        by_device: dict[str, list[tuple[int, DeviceEvent]]] = {}
        for index, raw in enumerate(raw_events):
            try:
                event = parse_event(partner_id, raw, now=now)
            except InvalidEventError as exc:
                self._reject(result, index, raw, exc.reason)
                continue
            access_point_id = devices.get(event.device_id)
            if access_point_id is None:
                self._reject(result, index, raw, "unknown_device")
            elif event.type == COMMAND_RESULT:
                results.append((index, event, access_point_id))
            elif event.type in REPORTS:
                reports.setdefault(access_point_id, []).append((index, event))
            else:
                by_device.setdefault(access_point_id, []).append((index, event))
        for index, event, access_point_id in results:
            outcome = await self._command_result(access_point_id, event)
            self._count(result, index, event, outcome)
        asks: list[tuple[str, list[tuple[int, DeviceEvent]], DeviceReports | DeviceEvents]] = [
            (ap_id, batch, DeviceReports(tuple(e for _, e in batch)))
            for ap_id, batch in reports.items()
        ]
        asks += [
            (ap_id, batch, DeviceEvents(tuple(e for _, e in batch)))
            for ap_id, batch in by_device.items()
        ]
        answers = await asyncio.gather(*(self._ask(ap_id, message) for ap_id, _, message in asks))
        for (_, batch, _), outcomes in zip(asks, answers, strict=True):
            for (index, event), outcome in zip(batch, outcomes, strict=True):
                self._count(result, index, event, outcome)
        result.rejected.sort(key=lambda r: int(r["index"]))
        log.info(
            "partner_events",
            partner=partner_id,
            accepted=result.accepted,
            duplicates=result.duplicates,
            rejected=len(result.rejected),
        )
        return result

    async def _devices_of(self, partner_id: str) -> dict[str, str]:
        rows = await self._db.fetch_all(
            "SELECT id, device_id FROM access_points WHERE partner_id = :p", p=partner_id
        )
        return {str(r["device_id"]): str(r["id"]) for r in rows}

    async def _command_result(self, access_point_id: str, event: DeviceEvent) -> str:
        """Hand the result over, then remember it: one that could not be delivered (the
        owner unreachable) is not a duplicate when the partner sends it again."""
        async with self._db.connect() as conn:
            if await partner_events.seen(
                conn, partner_id=event.partner_id, event_id=event.event_id
            ):
                return "duplicate"
        try:
            taken = await self._confirm(access_point_id, event)
        except (TimeoutError, ConnectionError) as exc:  # a cluster's owner out of reach
            raise IngestUnavailableError(f"device {access_point_id} did not answer") from exc
        async with self._db.transaction() as conn:
            fresh = await partner_events.remember(
                conn,
                partner_id=event.partner_id,
                event_id=event.event_id,
                device_id=event.device_id,
                type=event.type,
                at=self._clock(),
                command_ref=event.command_ref,
                vendor_command_id=event.vendor_command_id,
                result=event.result,
                error=event.error,
            )
        if not fresh:
            return "duplicate"
        if not taken:
            log.info("command_result_unexpected", partner=event.partner_id, event=event.event_id)
        return "accepted"

    async def _ask(self, access_point_id: str, message: DeviceReports | DeviceEvents) -> list[str]:
        try:
            outcomes = await self._route(f"device:{access_point_id}", message, self._ask_timeout)
        except (TimeoutError, ConnectionError) as exc:  # AskTimeout; a cluster's unreachable owner
            raise IngestUnavailableError(f"device {access_point_id} did not answer") from exc
        assert isinstance(outcomes, list) and len(outcomes) == len(message.events)
        return [str(o) for o in outcomes]

    @staticmethod
    def _reject(result: IngestResult, index: int, raw: Any, reason: str) -> None:
        event_id = raw.get("event_id") if isinstance(raw, dict) else None
        result.outcomes[index] = f"rejected:{reason}"
        entry: dict[str, Any] = {"index": index, "reason": reason}
        if isinstance(event_id, str):
            entry["event_id"] = event_id
        result.rejected.append(entry)

    @staticmethod
    def _count(result: IngestResult, index: int, event: DeviceEvent, outcome: str) -> None:
        result.outcomes[index] = outcome
        if outcome == "accepted":
            result.accepted += 1
        elif outcome == "duplicate":
            result.duplicates += 1
        else:
            reason = outcome.removeprefix("rejected:")
            result.outcomes[index] = f"rejected:{reason}"
            result.rejected.append({"index": index, "event_id": event.event_id, "reason": reason})
