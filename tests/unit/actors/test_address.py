from __future__ import annotations

import pickle

import pytest

from propdev.actors import Address, InvalidAddressError


def test_an_address_parses_from_and_formats_to_kind_colon_id() -> None:
    address = Address.parse("device:42")
    assert address == Address(kind="device", id="42")
    assert (address.kind, address.id) == ("device", "42")
    assert str(address) == "device:42"


def test_an_id_may_contain_colons() -> None:
    assert Address.parse("session:tenant:7").id == "tenant:7"


@pytest.mark.parametrize("text", ["device", ":42", "device:", ""])
def test_a_malformed_address_is_rejected(text: str) -> None:
    with pytest.raises(InvalidAddressError):
        Address.parse(text)


def test_addresses_are_hashable_immutable_and_slotted() -> None:
    address = Address("device", "42")
    assert {address: 1}[Address.parse("device:42")] == 1
    with pytest.raises(AttributeError):
        address.id = "43"  # type: ignore[misc]
    assert not hasattr(address, "__dict__")


def test_an_address_survives_pickling() -> None:
    address = Address("device", "42")
    assert pickle.loads(pickle.dumps(address)) == address


def test_an_address_is_not_equal_to_its_string() -> None:
    assert Address("device", "42") != "device:42"
