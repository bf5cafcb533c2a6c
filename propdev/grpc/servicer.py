"""The ``PartnerGateway`` gRPC service: device events in (acked one by one), commands out.

``StreamEvents`` reads the partner's events as they come and applies whatever has arrived
together as one batch through the node's ``PartnerEventIngest`` (the same code as
``POST /partner/v1/events``: validation per event, dedupe by ``(partner, event_id)``, each
device's events in order); an ``EventAck`` per event follows, in order. ``Commands`` attaches
the call to ``CommandStreams`` for as long as the partner keeps it open.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any, Literal

import grpc
import structlog
from google.protobuf.timestamp_pb2 import Timestamp

import propdev.grpc.partner_pb2 as partner_pb2
import propdev.grpc.partner_pb2_grpc as partner_pb2_grpc
from propdev.devices import MAX_EVENTS, IngestUnavailableError, PartnerEventIngest
from propdev.grpc.auth import METHOD_CALLERS, PARTNER, CallRefusedError, PartnerAuthenticator
from propdev.grpc.call_log import note_caller
from propdev.grpc.commands import CommandStreams, DeviceCommand
from propdev.http.partner_auth import PartnerCaller
from propdev.storage import StoreUnavailableError

log = structlog.get_logger()

Context = grpc.aio.ServicerContext[Any, Any]
OptionalField = Literal[
    "plate", "code", "request_id", "vendor_command_id", "ticket", "result", "error"
]
OPTIONAL_FIELDS: tuple[OptionalField, ...] = (
    "plate",
    "code",
    "request_id",
    "vendor_command_id",
    "ticket",
    "result",
    "error",
)
OUTCOMES = {
    "accepted": partner_pb2.EventAck.ACCEPTED,
    "duplicate": partner_pb2.EventAck.DUPLICATE,
}


def event_dict(event: partner_pb2.DeviceEvent) -> dict[str, Any]:
    """The event as ``/partner/v1/events`` takes it: fields not set are absent."""
    raw: dict[str, Any] = {}
    for name in ("event_id", "device_id", "type"):
        value = getattr(event, name)
        if value:
            raw[name] = value
    if event.HasField("occurred_at"):
        raw["occurred_at"] = event.occurred_at.ToNanoseconds() / 1e9
    for name in OPTIONAL_FIELDS:
        if event.HasField(name):
            raw[name] = getattr(event, name)
    return raw


def ack(event: partner_pb2.DeviceEvent, sequence: int, outcome: str) -> partner_pb2.EventAck:
    if outcome in OUTCOMES:
        return partner_pb2.EventAck(
            event_id=event.event_id, sequence=sequence, outcome=OUTCOMES[outcome]
        )
    return partner_pb2.EventAck(
        event_id=event.event_id,
        sequence=sequence,
        outcome=partner_pb2.EventAck.REJECTED,
        reason=outcome.removeprefix("rejected:"),
    )


def timestamp(at: float) -> Timestamp:
    stamp = Timestamp()
    stamp.FromNanoseconds(int(at * 1e9))
    return stamp


def command_message(command: DeviceCommand) -> partner_pb2.Command:
    return partner_pb2.Command(
        command_id=command.command_id,
        device_id=command.device_id,
        action=partner_pb2.Command.OPEN,
        issued_at=timestamp(command.issued_at),
        deadline=timestamp(command.deadline),
        traceparent=command.traceparent or "",
    )


class PartnerService(partner_pb2_grpc.PartnerGatewayServicer):
    def __init__(
        self,
        *,
        auth: PartnerAuthenticator,
        ingest: PartnerEventIngest,
        streams: CommandStreams,
        takes_commands: Callable[[str], bool],
    ) -> None:
        self._auth = auth
        self._ingest = ingest
        self._streams = streams
        self._takes_commands = takes_commands

    async def _caller(self, context: Context, method: str) -> PartnerCaller:
        """The calling partner, checked at the single entry of every method."""
        try:
            if METHOD_CALLERS.get(method) != PARTNER:
                raise CallRefusedError(grpc.StatusCode.PERMISSION_DENIED, "no caller rule")
            caller = await self._auth.authenticate(context)
        except CallRefusedError as exc:
            log.warning("grpc_call_refused", method=method, code=exc.code.name, detail=exc.detail)
            await context.abort(exc.code, exc.detail)
            raise  # abort raises; this line is for the type checker
        note_caller(caller)  # the integration log's record of the stream's opening
        return caller

    async def StreamEvents(
        self,
        request_iterator: AsyncIterator[partner_pb2.DeviceEvent],
        context: Context,
    ) -> AsyncIterator[partner_pb2.EventAck]:
        caller = await self._caller(context, "StreamEvents")
        arrived: asyncio.Queue[partner_pb2.DeviceEvent | None] = asyncio.Queue(2 * MAX_EVENTS)

        async def read() -> None:
            async for event in request_iterator:
                await arrived.put(event)
            await arrived.put(None)

        reader = asyncio.create_task(read())
        sequence = 0
        try:
            ended = False
            while not ended:
                first = await arrived.get()
                if first is None:
                    break
                batch = [first]
                while len(batch) < MAX_EVENTS and not arrived.empty():
                    more = arrived.get_nowait()
                    if more is None:
                        ended = True
                        break
                    batch.append(more)
                try:
                    result = await self._ingest.ingest(
                        caller.partner_id, [event_dict(e) for e in batch]
                    )
                except IngestUnavailableError as exc:
                    await context.abort(grpc.StatusCode.UNAVAILABLE, f"{exc}; resend (dedupe)")
                    raise
                except StoreUnavailableError:  # nothing recorded (nor audited): resend
                    log.warning("grpc_events_store_unavailable", partner=caller.partner_id)
                    await context.abort(
                        grpc.StatusCode.UNAVAILABLE, "the store is unavailable; resend (dedupe)"
                    )
                    raise
                for index, event in enumerate(batch):
                    outcome = result.outcomes.get(index, "rejected:not_applied")
                    yield ack(event, sequence + index, outcome)
                sequence += len(batch)
            await reader
        finally:
            reader.cancel()  # the integration log's close record counts the events and acks

    async def Commands(
        self,
        request: partner_pb2.CommandsRequest,
        context: Context,
    ) -> AsyncIterator[partner_pb2.Command]:
        caller = await self._caller(context, "Commands")
        if not self._takes_commands(caller.partner_id):
            await context.abort(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"partner {caller.partner_id!r} is not registered for commands over gRPC",
            )
        async with self._streams.attach(caller.partner_id) as inbox:
            log.info("grpc_commands_attached", partner=caller.partner_id)
            # The partner knows it is attached (commands from now on reach it) when the
            # initial metadata arrives.
            await context.send_initial_metadata((("propdev-commands", "attached"),))
            try:
                while True:
                    command = await inbox.get()
                    yield command_message(command)
            finally:
                log.info("grpc_commands_detached", partner=caller.partner_id)
