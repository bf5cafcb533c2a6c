"""``simulator_control``: the in-process simulator's control API only in embedded mode on a
loopback listener."""

from __future__ import annotations

import pytest

from propdev.config import Settings
from propdev.node import is_loopback, simulator_control


@pytest.mark.parametrize(
    "host", ["127.0.0.1", "127.3.2.1", "::1", "[::1]", "localhost", "LOCALHOST", "localhost."]
)
def test_loopback_addresses_and_localhost_are_loopback(host: str) -> None:
    assert is_loopback(host)


@pytest.mark.parametrize(
    "host", ["0.0.0.0", "::", "", "10.0.0.5", "192.168.1.20", "fe80::1", "propdev.example"]
)
def test_wildcards_other_addresses_and_names_are_not(host: str) -> None:
    assert not is_loopback(host)


def test_an_embedded_node_on_loopback_mounts_it() -> None:
    assert simulator_control(Settings.from_env({})) == (True, "embedded_on_loopback")


def test_a_node_listening_on_every_interface_does_not() -> None:
    settings = Settings.from_env({"PROPDEV_HOST": "0.0.0.0"})
    assert simulator_control(settings) == (False, "listener_not_loopback")


def test_a_node_with_a_remote_vendor_has_no_in_process_simulator_to_control() -> None:
    settings = Settings.from_env({"PROPDEV_PARTNER_URL": "https://127.0.0.1:9443"})
    assert simulator_control(settings) == (False, "partner_url_set")
