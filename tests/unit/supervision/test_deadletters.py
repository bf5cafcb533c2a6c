from __future__ import annotations

import json

from propdev.supervision import DeadLetters


def test_dead_letters_are_kept_with_their_error_and_attempts() -> None:
    letters = DeadLetters(clock=lambda: 123.0)
    letters.record("device:1", {"open": True}, ValueError("bad"), attempts=3)
    (letter,) = letters
    assert letter.as_dict() == {
        "address": "device:1",
        "message": "{'open': True}",
        "error": "ValueError('bad')",
        "at": 123.0,
        "attempts": 3,
    }
    assert json.loads(json.dumps(letters.snapshot()))[0]["attempts"] == 3


def test_only_the_latest_are_kept_but_all_are_counted_per_kind() -> None:
    letters = DeadLetters(capacity=2)
    for i in range(3):
        letters.record(f"device:{i}", i, "err", attempts=1)
    letters.record("session:1", "x", "err", attempts=1)
    assert [letter.address for letter in letters] == ["device:2", "session:1"]
    assert letters.by_kind() == {"device": 3, "session": 1}
    assert letters.total == 4


def test_a_huge_message_is_kept_as_a_short_repr() -> None:
    letters = DeadLetters()
    letter = letters.record("device:1", "x" * 10_000, "err", attempts=1)
    assert len(letter.message) == 500
    assert letter.message.endswith("...")
