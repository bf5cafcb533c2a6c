from __future__ import annotations

from typing import Any

import pytest

from propdev.devices import InvalidEventError, parse_event

NOW = 1_800_000_000.0


def raw(**fields: Any) -> dict[str, Any]:
    return {
        "event_id": "e1",
        "device_id": "d1",
        "type": "entry",
        "occurred_at": "2027-01-15T08:00:00+00:00",
        **fields,
    }


def test_an_entry_carries_our_command_id_and_the_vendor_s() -> None:
    event = parse_event("p", raw(request_id="cmd-1", vendor_command_id="v-1"), now=NOW)
    assert (event.partner_id, event.command_ref, event.vendor_command_id) == ("p", "cmd-1", "v-1")
    assert event.occurred_at == NOW  # 2027-01-15T08:00:00Z


def test_acme_s_names_for_the_same_links_are_understood() -> None:
    event = parse_event("acme", raw(reference="cmd-1", ticket="tk-1"), now=NOW)
    assert (event.command_ref, event.vendor_command_id) == ("cmd-1", "tk-1")


def test_epoch_seconds_are_a_time_too() -> None:
    assert parse_event("p", raw(occurred_at=NOW - 5), now=NOW).occurred_at == NOW - 5


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"event_id": None}, "missing_event_id"),
        ({"event_id": ""}, "invalid_event_id"),
        ({"type": "teleported"}, "unknown_type"),
        ({"occurred_at": "yesterday"}, "invalid_occurred_at"),
        ({"occurred_at": "2027-01-15T08:00:00"}, "invalid_occurred_at"),
        ({"occurred_at": NOW + 7 * 86400}, "invalid_occurred_at"),
        ({"occurred_at": True}, "invalid_occurred_at"),
        ({"type": "plate_recognized"}, "missing_plate"),
        ({"type": "pass_presented", "code": 42}, "invalid_code"),
        ({"type": "command_result", "result": "done"}, "missing_ticket"),
        ({"type": "command_result", "ticket": "t", "result": "maybe"}, "invalid_result"),
        ({"type": "command_result", "ticket": "t", "result": "failed"}, "missing_error"),
    ],
)
def test_a_malformed_event_is_rejected_with_its_reason(fields: dict[str, Any], reason: str) -> None:
    event = {k: v for k, v in raw(**fields).items() if v is not None}
    with pytest.raises(InvalidEventError) as caught:
        parse_event("p", event, now=NOW)
    assert caught.value.reason == reason
