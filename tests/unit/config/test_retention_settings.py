"""``PROPDEV_RETENTION_EVENTS_DAYS`` and ``PROPDEV_RETENTION_AUDIT_DAYS``."""

from __future__ import annotations

import pytest

from propdev.config import Settings, SettingsError


def test_retention_defaults_to_a_year_of_events_and_three_of_audit_personal_fields() -> None:
    settings = Settings.from_env({})
    assert (settings.retention_events_days, settings.retention_audit_days) == (365, 1095)


def test_retention_days_are_read_from_the_environment() -> None:
    settings = Settings.from_env(
        {"PROPDEV_RETENTION_EVENTS_DAYS": "90", "PROPDEV_RETENTION_AUDIT_DAYS": "730"}
    )
    assert (settings.retention_events_days, settings.retention_audit_days) == (90, 730)


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("PROPDEV_RETENTION_EVENTS_DAYS", "0"),
        ("PROPDEV_RETENTION_EVENTS_DAYS", "a year"),
        ("PROPDEV_RETENTION_AUDIT_DAYS", "-1"),
        ("PROPDEV_RETENTION_AUDIT_DAYS", "36501"),
    ],
)
def test_a_bad_retention_is_refused_naming_the_variable(variable: str, value: str) -> None:
    with pytest.raises(SettingsError, match=variable):
        Settings.from_env({variable: value})
