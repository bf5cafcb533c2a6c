"""The messages that cross nodes survive msgpack both ways."""

from __future__ import annotations

import pytest

from propdev.actors.messages import (
    CommandResult,
    DeviceEvent,
    DeviceEvents,
    DeviceReports,
    DeviceSnapshot,
    OpenAccessPoint,
    PartnerCommand,
)
from propdev.registry.errors import WireError
from propdev.registry.wire import (
    decode_message,
    decode_reply,
    encode_message,
    encode_reply,
    pack,
    unpack,
)

OFFLINE = DeviceEvent("simulator", "ev-1", "dev-7", "device_offline", 1_700_000_000.25)
PASSAGE = DeviceEvent(
    "simulator",
    "ev-2",
    "dev-7",
    "entry",
    1_700_000_001.5,
    plate="AB-123",
    code=None,
    command_ref="cmd-1",
    vendor_command_id="v-9",
    result=None,
    error=None,
)


def round_trip(message: object) -> object:
    return decode_message(unpack(pack(encode_message(message))))


@pytest.mark.parametrize(
    "message",
    [
        OFFLINE,
        PASSAGE,
        DeviceEvents((OFFLINE, PASSAGE)),
        DeviceEvents(()),
        DeviceReports((OFFLINE, DeviceEvent("acme", "ev-4", "lock-1", "device_jammed", 2.5))),
        DeviceSnapshot(),
        OpenAccessPoint("ap-1", "u-1", "anna", "cmd-1", idempotency_key="k", note="n"),
        CommandResult(
            DeviceEvent("acme", "ev-3", "lock-1", "command_result", 1.5, vendor_command_id="T1")
        ),
        PartnerCommand("streamco", "cmd-2", "sc-door-1", "open", 10.0, 13.0, "00-ab-cd-01"),
        PartnerCommand("streamco", "cmd-3", "sc-door-1", "open", 10.0, 13.0),
    ],
)
def test_a_message_for_a_device_crosses_nodes_unchanged(message: object) -> None:
    assert round_trip(message) == message


def test_a_batchs_outcomes_and_a_snapshot_come_back_as_sent() -> None:
    outcomes = ["accepted", "duplicate", "rejected:unsupported_type:x"]
    snapshot = {"access_point_id": "ap-1", "online": False, "last_seen": 1.5, "opens": 2}
    for value in (outcomes, snapshot):
        assert decode_reply(unpack(pack(encode_reply(value)))) == value


def test_a_device_event_with_missing_fields_is_a_wire_error() -> None:
    with pytest.raises(WireError):
        decode_message({"t": "event", "e": ["simulator", "ev-1"]})
