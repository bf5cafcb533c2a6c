"""Commands for gRPC-connected partners: the open streams, and the adapter that uses them.

``CommandStreams`` holds, per partner, the ``Commands`` calls it keeps open (a queue each);
``send`` hands a command to the newest one. ``GrpcPartnerAdapter`` is the ``PartnerAdapter`` of
a partner registered with adapter ``grpc``: ``open`` sends an OPEN command on the partner's
stream and waits for the ``command_result`` event whose ``ticket`` is the command id (it comes
in on ``StreamEvents`` and reaches ``confirm`` through the node's ingest); the
``PartnerGateway`` around it bounds the wait (504), counts failures (no stream open is
``PartnerUnavailableError``) and caps the calls in flight.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

from propdev.config import Settings
from propdev.partners import (
    CallObserver,
    Confirmation,
    Confirmations,
    DeviceInfo,
    DeviceStatus,
    OpenResult,
    PartnerGateway,
    PartnerRefusedError,
    PartnerUnavailableError,
    StateListener,
    guarded,
)

ADAPTER = "grpc"
INBOX = 256


@dataclass(frozen=True, slots=True)
class DeviceCommand:
    command_id: str
    device_id: str
    action: str
    issued_at: float
    deadline: float
    traceparent: str | None = None


Forward = Callable[[str, DeviceCommand], Awaitable[bool]]
"""``forward(partner_id, command)``: to another node holding one of the partner's streams."""
Announce = Callable[[str, int], Awaitable[None]]
"""``announce(partner_id, streams open here)``: after each attach and detach."""


class CommandStreams:
    """The ``Commands`` calls each partner holds open on this node.

    In a cluster (``ClusterCommands``), ``announce`` tells the others how many streams of a
    partner this node holds, and ``deliver`` hands a command that no stream here can take to
    ``forward``: the node where the partner's stream is."""

    def __init__(self) -> None:
        self._open: dict[str, list[asyncio.Queue[DeviceCommand]]] = {}
        self.forward: Forward | None = None
        self.announce: Announce | None = None

    def connected(self, partner_id: str) -> int:
        return len(self._open.get(partner_id, ()))

    @contextlib.asynccontextmanager
    async def attach(self, partner_id: str) -> AsyncIterator[asyncio.Queue[DeviceCommand]]:
        inbox: asyncio.Queue[DeviceCommand] = asyncio.Queue(INBOX)
        self._open.setdefault(partner_id, []).append(inbox)
        await self._announce(partner_id)
        try:
            yield inbox
        finally:
            streams = self._open.get(partner_id, [])
            if inbox in streams:
                streams.remove(inbox)
            if not streams:
                self._open.pop(partner_id, None)
            await self._announce(partner_id)

    async def _announce(self, partner_id: str) -> None:
        if self.announce is not None:
            await self.announce(partner_id, self.connected(partner_id))

    async def deliver(self, partner_id: str, command: DeviceCommand) -> bool:
        """To a stream of the partner here, else (in a cluster) on another node."""
        if self.send(partner_id, command):
            return True
        if self.forward is not None:
            return await self.forward(partner_id, command)
        return False

    def send(self, partner_id: str, command: DeviceCommand) -> bool:
        """Hand ``command`` to the partner's newest stream; False if none can take it."""
        for inbox in reversed(self._open.get(partner_id, [])):
            try:
                inbox.put_nowait(command)
            except asyncio.QueueFull:
                continue
            return True
        return False


class GrpcPartnerAdapter:
    """A partner whose commands go down its gRPC ``Commands`` stream."""

    def __init__(
        self,
        partner_id: str,
        streams: CommandStreams,
        *,
        timeout: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._partner_id = partner_id
        self._streams = streams
        self._timeout = timeout
        self._clock = clock
        self._confirmations = Confirmations()

    @property
    def partner_id(self) -> str:
        return self._partner_id

    async def open(
        self, device_id: str, *, request_id: str, traceparent: str | None = None
    ) -> OpenResult:
        now = self._clock()
        command = DeviceCommand(
            request_id, device_id, "open", now, now + self._timeout, traceparent
        )
        if not await self._streams.deliver(self._partner_id, command):
            raise PartnerUnavailableError(f"{self._partner_id}: no command stream is open")
        confirmation = await self._confirmations.wait(request_id)
        if not confirmation.ok:
            raise PartnerRefusedError(confirmation.error or "refused", "command_result failed")
        return OpenResult(
            device_id,
            request_id,
            confirmed_at=confirmation.at,
            accepted_at=dt.datetime.fromtimestamp(now, dt.UTC),
        )

    def confirm(self, confirmation: Confirmation) -> bool:
        return self._confirmations.resolve(confirmation)

    async def device_status(self, device_id: str) -> DeviceStatus:
        raise PartnerUnavailableError("gRPC partners report their devices' state by events")

    async def list_devices(self) -> list[DeviceInfo]:
        return []

    async def close(self) -> None:
        """The streams belong to the server."""


def build_grpc_gateway(
    settings: Settings,
    partner_id: str,
    streams: CommandStreams,
    *,
    on_state_change: StateListener | None = None,
    observe: CallObserver | None = None,
) -> PartnerGateway:
    """The gateway to a partner registered with adapter ``grpc``."""
    adapter = GrpcPartnerAdapter(partner_id, streams, timeout=settings.partner_timeout)
    return guarded(adapter, settings, on_state_change=on_state_change, observe=observe)
