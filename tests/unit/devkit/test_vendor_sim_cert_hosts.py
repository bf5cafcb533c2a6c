"""The simulator's certificate names the host the nodes reach it at (a container's name)."""

from __future__ import annotations

from propdev.config import Settings
from propdev.devkit.vendor_sim.server import CERT_HOSTS, cert_hosts


def test_the_partner_url_host_joins_loopback_in_the_simulator_certificate() -> None:
    remote = Settings.from_env({"PROPDEV_PARTNER_URL": "https://partner-sim:9443"})
    assert cert_hosts(remote) == (*CERT_HOSTS, "partner-sim")
    assert cert_hosts(Settings.from_env({})) == CERT_HOSTS
    local = Settings.from_env({"PROPDEV_PARTNER_URL": "https://127.0.0.1:9443"})
    assert cert_hosts(local) == CERT_HOSTS
