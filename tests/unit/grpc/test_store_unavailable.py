"""Partner events over gRPC while the store is down: UNAVAILABLE (the partner resends; replays
are duplicates), never UNKNOWN. Nothing could be recorded, so nothing is audited
(docs/audit.md, *Not audited*)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any, cast

import grpc
import pytest

import propdev.grpc.partner_pb2 as partner_pb2
from propdev.devices import IngestResult, PartnerEventIngest
from propdev.grpc.auth import PartnerAuthenticator
from propdev.grpc.commands import CommandStreams
from propdev.grpc.servicer import PartnerService
from propdev.http.partner_auth import PartnerCaller
from propdev.storage import StoreUnavailableError


class Aborted(Exception):
    pass


class Context:
    """The part of a servicer context ``StreamEvents`` uses: ``abort`` records and raises."""

    def __init__(self) -> None:
        self.code: grpc.StatusCode | None = None
        self.detail = ""

    async def abort(self, code: grpc.StatusCode, detail: str) -> None:
        self.code, self.detail = code, detail
        raise Aborted(detail)


class Caller:
    async def authenticate(self, context: object) -> PartnerCaller:
        return PartnerCaller("acme", "127.0.0.1")


class StoreDown:
    async def ingest(self, partner_id: str, raw_events: Sequence[Any]) -> IngestResult:
        raise StoreUnavailableError("connection refused")


async def events() -> AsyncIterator[partner_pb2.DeviceEvent]:
    yield partner_pb2.DeviceEvent(event_id="e1", device_id="d1", type="door_opened")


async def test_events_while_the_store_is_down_are_unavailable_to_resend() -> None:
    service = PartnerService(
        auth=cast(PartnerAuthenticator, Caller()),
        ingest=cast(PartnerEventIngest, StoreDown()),
        streams=cast(CommandStreams, None),
        takes_commands=lambda partner: False,
    )
    context = Context()
    with pytest.raises(Aborted):
        async for _ in service.StreamEvents(events(), cast(Any, context)):
            pass
    assert context.code == grpc.StatusCode.UNAVAILABLE
    assert "resend" in context.detail and "connection refused" not in context.detail
