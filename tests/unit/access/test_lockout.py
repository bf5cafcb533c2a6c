"""Keypad lockout: a windowed count of unknown codes per device, then a cooldown."""

from __future__ import annotations

import pytest

from propdev.access import KeypadLockout, KeypadPolicy
from propdev.access.lockout import LOCKED, REFUSED


def lockout(events: list[str] | None = None) -> KeypadLockout:
    sink = events if events is not None else []
    return KeypadLockout(KeypadPolicy(attempts=3, window=60, cooldown=120), on_event=sink.append)


def test_the_nth_unknown_code_within_the_window_locks_only_that_device_for_the_cooldown() -> None:
    events: list[str] = []
    keypads = lockout(events)
    assert [keypads.wrong_now("door", t) for t in (0, 10, 20)] == [False, False, True]
    assert keypads.locked_until("door", 20) == 140
    assert keypads.locked_until("other-door", 20) is None
    assert keypads.refuse_now("door", 139.9) == 140
    assert keypads.refuse_now("door", 140) is None  # the cooldown is over
    assert events == [LOCKED, REFUSED]
    assert keypads.snapshot("door", 140) == {
        "locked_out": False,
        "locked_until": None,
        "wrong_codes": 0,
        "lockouts": 1,
        "refused_while_locked": 1,
    }


def test_wrong_codes_older_than_the_window_do_not_count() -> None:
    keypads = lockout()
    assert not keypads.wrong_now("door", 0)
    assert not keypads.wrong_now("door", 30)
    assert not keypads.wrong_now("door", 61)  # the first has left the window
    assert keypads.snapshot("door", 61)["wrong_codes"] == 2
    assert keypads.wrong_now("door", 62)


def test_a_known_code_ends_the_run_of_wrong_ones() -> None:
    keypads = lockout()
    keypads.wrong_now("door", 0)
    keypads.wrong_now("door", 1)
    keypads.right_now("door")
    assert not keypads.wrong_now("door", 2)
    assert keypads.locked_until("door", 2) is None
    assert keypads.snapshot("never-seen", 0)["locked_out"] is False


@pytest.mark.parametrize("policy", [{"attempts": 0}, {"window": 0.0}, {"cooldown": -1.0}], ids=str)
def test_a_policy_that_could_not_work_is_refused(policy: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        KeypadPolicy(**policy)  # type: ignore[arg-type]
