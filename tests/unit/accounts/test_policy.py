from __future__ import annotations

import pytest

from propdev.accounts import WeakPasswordError, check_new_password, common_passwords


def test_the_shipped_list_holds_thousands_of_common_passwords_of_eight_or_more() -> None:
    found = common_passwords()
    assert len(found) > 10_000
    assert {"password", "12345678", "iloveyou", "qwertyuiop"} <= found
    assert all(len(p) >= 8 and p == p.lower() for p in found)


@pytest.mark.parametrize(
    ("password", "reason"),
    [
        ("short1!", "at least 8"),
        ("Password", "commonly used"),
        ("  QWERTYUIOP ", "commonly used"),
        ("Rita.Petrova", "username"),
        ("x" * 257, "at most 256"),
        ("tab\there-is-bad", "control"),
        (12345678, "string"),
    ],
)
def test_a_weak_password_is_refused_with_its_reason(password: object, reason: str) -> None:
    with pytest.raises(WeakPasswordError) as caught:
        check_new_password(password, "rita.petrova")
    assert caught.value.field == "new_password"
    assert reason in caught.value.reason


def test_a_long_uncommon_password_passes_spaces_and_unicode_included() -> None:
    for good in ("correct horse battery staple", "пароль-из-словаря-нет", "8chars!x"):
        assert check_new_password(good, "rita") == good
