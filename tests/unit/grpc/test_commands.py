"""The command path of gRPC partners: streams, the adapter, the conversion of messages."""

from __future__ import annotations

import asyncio

import pytest

from propdev.grpc import CommandStreams, DeviceCommand, GrpcPartnerAdapter, partner_pb2
from propdev.grpc.auth import peer_address
from propdev.grpc.servicer import ack, event_dict
from propdev.partners import Confirmation, PartnerRefusedError, PartnerUnavailableError


async def test_an_open_is_sent_on_the_newest_stream_and_completes_with_its_result() -> None:
    streams = CommandStreams()
    adapter = GrpcPartnerAdapter("p", streams, timeout=3.0, clock=lambda: 100.0)
    with pytest.raises(PartnerUnavailableError):
        await adapter.open("d1", request_id="c0")
    async with streams.attach("p") as old, streams.attach("p") as new:
        assert streams.connected("p") == 2
        opening = asyncio.create_task(adapter.open("d1", request_id="c1", traceparent="tp"))
        command = await new.get()
        assert command == DeviceCommand("c1", "d1", "open", 100.0, 103.0, "tp")
        assert old.empty()
        assert adapter.confirm(Confirmation("c1", True))
        result = await opening
        assert (result.device_id, result.vendor_command_id) == ("d1", "c1")

        refused = asyncio.create_task(adapter.open("d1", request_id="c2"))
        await new.get()
        adapter.confirm(Confirmation("c2", False, "device_jammed"))
        with pytest.raises(PartnerRefusedError) as caught:
            await refused
        assert caught.value.reason == "device_jammed"
    assert streams.connected("p") == 0
    assert not streams.send("p", command)


def test_an_event_message_becomes_the_rest_body_without_unset_fields() -> None:
    message = partner_pb2.DeviceEvent(event_id="e1", device_id="d1", type="entry", request_id="c1")
    message.occurred_at.FromSeconds(1_800_000_000)
    assert event_dict(message) == {
        "event_id": "e1",
        "device_id": "d1",
        "type": "entry",
        "occurred_at": 1_800_000_000.0,
        "request_id": "c1",
    }
    assert event_dict(partner_pb2.DeviceEvent(type="entry", plate="")) == {
        "type": "entry",
        "plate": "",  # set, though empty: validation names it
    }


def test_acks_carry_the_outcome_and_a_rejection_s_reason() -> None:
    message = partner_pb2.DeviceEvent(event_id="e1")
    assert ack(message, 3, "duplicate").outcome == partner_pb2.EventAck.DUPLICATE
    rejected = ack(message, 4, "rejected:unknown_device")
    assert (rejected.sequence, rejected.outcome, rejected.reason) == (
        4,
        partner_pb2.EventAck.REJECTED,
        "unknown_device",
    )


@pytest.mark.parametrize(
    ("peer", "address"),
    [
        ("ipv4:127.0.0.1:50412", "127.0.0.1"),
        ("ipv6:[::1]:50412", "::1"),
        ("unix:/tmp/socket", None),
        ("ipv4:bogus:1", None),
    ],
)
def test_the_peer_s_address_is_read_for_the_allowlist(peer: str, address: str | None) -> None:
    assert peer_address(peer) == address


async def test_a_command_no_stream_here_takes_is_forwarded_and_streams_are_announced() -> None:
    streams = CommandStreams()
    announced: list[tuple[str, int]] = []
    forwarded: list[tuple[str, DeviceCommand]] = []

    async def announce(partner_id: str, count: int) -> None:
        announced.append((partner_id, count))

    async def forward(partner_id: str, command: DeviceCommand) -> bool:
        forwarded.append((partner_id, command))
        return partner_id == "elsewhere"

    streams.announce, streams.forward = announce, forward
    command = DeviceCommand("c1", "d1", "open", 100.0, 103.0)
    async with streams.attach("p") as here:
        assert await streams.deliver("p", command)  # taken here: not forwarded
        assert here.get_nowait() == command
    assert await streams.deliver("elsewhere", command)
    assert not await streams.deliver("nowhere", command)
    assert [p for p, _ in forwarded] == ["elsewhere", "nowhere"]
    assert announced == [("p", 1), ("p", 0)]
