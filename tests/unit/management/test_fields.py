from __future__ import annotations

import pytest

from propdev.management import InvalidFieldError, PointSpec, fields


@pytest.mark.parametrize("value", ["", "-x", "a b", "x" * 65, 7, None, "é"])
def test_an_id_outside_the_alphabet_is_refused_with_its_field(value: object) -> None:
    with pytest.raises(InvalidFieldError) as raised:
        fields.ident(value, "building_id")
    assert raised.value.field == "building_id"


@pytest.mark.parametrize("value", ["Europe/Moscow", "UTC", "America/Argentina/Salta"])
def test_known_time_zones_pass(value: str) -> None:
    assert fields.timezone(value) == value


@pytest.mark.parametrize("value", ["Mars/Olympus", "../etc/passwd", "", 3])
def test_unknown_time_zones_are_refused(value: object) -> None:
    with pytest.raises(InvalidFieldError):
        fields.timezone(value)


def test_a_partial_update_validates_the_fields_it_changes_and_keeps_the_id() -> None:
    spec = PointSpec("ap-1", "Door", "door", "bld-a", "sim", "d-1")
    assert spec.with_changes({"name": " Gate ", "kind": "barrier"}) == PointSpec(
        "ap-1", "Gate", "barrier", "bld-a", "sim", "d-1"
    )
    with pytest.raises(InvalidFieldError) as raised:
        spec.with_changes({"name": "bad\x00name"})
    assert raised.value.field == "name"
