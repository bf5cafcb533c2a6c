from __future__ import annotations

from propdev.devices import Presence, presence

HEARTBEAT = 120.0


def at(now: float, **state: object) -> Presence:
    return presence(
        online=state.get("online"),  # type: ignore[arg-type]
        last_seen=state.get("last_seen"),  # type: ignore[arg-type]
        fault=state.get("fault"),  # type: ignore[arg-type]
        now=now,
        heartbeat=HEARTBEAT,
    )


def test_a_device_never_seen_is_unknown() -> None:
    assert at(1000.0) == Presence(None, "unknown", None)


def test_a_device_seen_within_its_heartbeat_is_online_with_its_age() -> None:
    assert at(1000.0, online=True, last_seen=950.0) == Presence(True, "online", 50.0)


def test_a_silent_device_turns_unknown_as_the_clock_passes_its_heartbeat() -> None:
    seen = {"online": True, "last_seen": 1000.0}
    assert at(1000.0 + HEARTBEAT, **seen).online is True
    assert at(1000.0 + HEARTBEAT + 0.5, **seen) == Presence(None, "unknown", HEARTBEAT + 0.5)


def test_a_device_reported_offline_stays_offline_however_long_ago() -> None:
    assert at(10_000.0, online=False, last_seen=1000.0) == Presence(False, "offline", 9000.0)
    assert at(10_000.0, online=False) == Presence(False, "offline", None)


def test_a_fault_shows_as_the_state_of_an_online_device() -> None:
    assert at(1000.0, online=True, last_seen=999.0, fault="jammed").state == "jammed"
