"""A batch's events go where they must: results to the adapter, a device's state reports to its
actor as ``DeviceReports`` (applied beside an open in flight), its other events as one
``DeviceEvents`` in batch order; each outcome comes back at its event's index."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from propdev.devices import DeviceEvent, DeviceEvents, DeviceReports, PartnerEventIngest
from propdev.storage import Database, migrate
from propdev.storage.directory import AccessPoint, Directory

NOW = 1_800_000_000.0


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    database = Database(f"sqlite:///{tmp_path}/ingest.db")
    try:
        await migrate(database)
        directory = Directory(database)
        await directory.put_site("site-1", "Site")
        await directory.put_building("bld-1", "site-1", "Building")
        await directory.put_partner("acme", "acme", "acme", [])
        for ap, device in (("ap-1", "lock-1"), ("ap-2", "lock-2")):
            await directory.put_access_point(
                AccessPoint(ap, ap, "door", "site-1", "bld-1", "acme", device)
            )
        yield database
    finally:
        await database.close()


def raw(event_id: str, device_id: str, type_: str, **fields: str) -> dict[str, object]:
    return {
        "event_id": event_id,
        "device_id": device_id,
        "type": type_,
        "occurred_at": NOW,
        **fields,
    }


async def test_reports_and_other_events_reach_the_actor_as_separate_asks(db: Database) -> None:
    asked: list[tuple[str, object]] = []
    confirmed: list[DeviceEvent] = []

    async def ask(target: str, message: object, timeout: float) -> object:  # noqa: ASYNC109 - the Ask signature
        asked.append((target, message))
        assert isinstance(message, DeviceEvents | DeviceReports)
        return [
            f"rejected:seen:{e.event_id}" if e.event_id == "e5" else "accepted"
            for e in message.events
        ]

    async def confirm(access_point_id: str, event: DeviceEvent) -> bool:
        confirmed.append(event)
        return True

    ingest = PartnerEventIngest(db=db, ask=ask, confirm=confirm, ask_timeout=5.0, clock=lambda: NOW)
    result = await ingest.ingest(
        "acme",
        [
            raw("e0", "lock-1", "plate_recognized", plate="A123BC77"),
            raw("e1", "lock-1", "device_jammed"),
            raw("e2", "lock-1", "entry"),
            raw("e3", "lock-1", "command_result", ticket="T1", result="done"),
            raw("e4", "lock-1", "device_offline"),
            raw("e5", "lock-2", "device_recovered"),
        ],
    )

    assert [e.event_id for e in confirmed] == ["e3"]
    messages = {(target, type(m).__name__): [e.event_id for e in m.events] for target, m in asked}
    assert messages == {
        ("device:ap-1", "DeviceReports"): ["e1", "e4"],
        ("device:ap-1", "DeviceEvents"): ["e0", "e2"],
        ("device:ap-2", "DeviceReports"): ["e5"],
    }
    assert result.outcomes == {
        0: "accepted",
        1: "accepted",
        2: "accepted",
        3: "accepted",
        4: "accepted",
        5: "rejected:seen:e5",
    }
    assert (result.accepted, result.duplicates) == (5, 0)
    assert result.rejected == [{"index": 5, "event_id": "e5", "reason": "seen:e5"}]


def test_reports_are_state_reports_only() -> None:
    entry = DeviceEvent("acme", "e1", "lock-1", "entry", NOW)
    with pytest.raises(ValueError, match="entry"):
        DeviceReports((DeviceEvent("acme", "e0", "lock-1", "device_online", NOW), entry))
