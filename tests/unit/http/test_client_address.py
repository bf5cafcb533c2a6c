"""The client's address: forwarding headers believed only from trusted proxies, and the one
address the rate limits, logs and ``/metrics`` allowlist all use."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from propdev.config import Settings
from propdev.config.settings import SettingsError
from propdev.http.app import make_app
from propdev.http.client_address import (
    forwarded_for,
    networks,
    parse_address,
    resolve_client,
)
from propdev.http.ratelimit import Decision, Rule
from propdev.node import Node
from propdev.storage import migrate

PROXIES = networks(["10.0.0.0/8", "2001:db8:ffff::/48"])


def test_an_untrusted_peer_is_the_client_whatever_it_says() -> None:
    spoofed = resolve_client(
        "203.0.113.9",
        forwarded=["for=198.51.100.7"],
        x_forwarded_for_lines=["198.51.100.7"],
        trusted=PROXIES,
    )
    assert spoofed == "203.0.113.9"
    assert resolve_client("10.0.0.2", x_forwarded_for_lines=["198.51.100.7"]) == "10.0.0.2"


def test_the_chain_is_walked_from_the_right_past_trusted_hops() -> None:
    chain = ["192.0.2.66, 198.51.100.7, 10.0.0.9", "10.0.0.8"]  # two header lines
    assert resolve_client("10.0.0.1", x_forwarded_for_lines=chain, trusted=PROXIES) == (
        "198.51.100.7"  # the client's own 192.0.2.66 is left of an untrusted hop: ignored
    )
    forwarded = ['for=192.0.2.66;proto=https, for="[2001:db8::7]:4711"', "for=10.0.0.9;by=x"]
    assert resolve_client("10.0.0.1", forwarded=forwarded, trusted=PROXIES) == "2001:db8::7"
    only_proxies = resolve_client("10.0.0.1", x_forwarded_for_lines=["10.0.0.3"], trusted=PROXIES)
    assert only_proxies == "10.0.0.3"
    assert resolve_client("10.0.0.1", trusted=PROXIES) == "10.0.0.1"  # no header: the peer


def test_address_forms_with_ports_brackets_quotes_and_mapped_v4() -> None:
    assert str(parse_address("[::1]:8443")) == "::1"
    assert str(parse_address('"[2001:db8::1]"')) == "2001:db8::1"
    assert str(parse_address("192.0.2.7:5000")) == "192.0.2.7"
    assert str(parse_address("::ffff:192.0.2.7")) == "192.0.2.7"
    assert str(parse_address("2001:db8::1")) == "2001:db8::1"
    for garbage in ("unknown", "_hidden", "[::1", "1.2.3", "", "fe80::1%eth0", "a" * 300):
        assert parse_address(garbage) is None, garbage
    assert forwarded_for(['for="_x;y", FOR=192.0.2.1;proto=http', "by=10.0.0.1"]) == [
        '"_x;y"',
        "192.0.2.1",
        "",
    ]


def test_garbage_in_the_chain_stops_at_the_last_trusted_hop() -> None:
    assert (
        resolve_client("10.0.0.1", x_forwarded_for_lines=["198.51.100.7, unknown, 10.0.0.5"],
                       trusted=PROXIES)
        == "10.0.0.5"
    )  # fmt: skip
    assert resolve_client("10.0.0.1", forwarded=["for=unknown"], trusted=PROXIES) == "10.0.0.1"
    assert resolve_client("10.0.0.1", forwarded=["proto=https"], trusted=PROXIES) == "10.0.0.1"
    assert resolve_client("10.0.0.1", x_forwarded_for_lines=[",,"], trusted=PROXIES) == "10.0.0.1"


def test_headers_naming_different_clients_are_both_disbelieved() -> None:
    both = resolve_client(
        "10.0.0.1",
        forwarded=["for=198.51.100.7"],
        x_forwarded_for_lines=["192.0.2.66"],
        trusted=PROXIES,
    )
    assert both == "10.0.0.1"
    agreeing = resolve_client(
        "10.0.0.1",
        forwarded=["for=198.51.100.7"],
        x_forwarded_for_lines=["198.51.100.7"],
        trusted=PROXIES,
    )
    assert agreeing == "198.51.100.7"


def test_the_settings_read_and_check_the_networks() -> None:
    settings = Settings.from_env(
        {"PROPDEV_TRUSTED_PROXIES": "10.0.0.0/8, ::1", "PROPDEV_METRICS_ALLOW": "192.0.2.0/24"}
    )
    assert settings.trusted_proxies == ("10.0.0.0/8", "::1/128")
    assert settings.metrics_allow == ("192.0.2.0/24",)
    assert Settings.from_env({}).trusted_proxies == ()
    assert Settings.from_env({}).metrics_allow == ("127.0.0.0/8", "::1/128")
    with pytest.raises(SettingsError, match="PROPDEV_TRUSTED_PROXIES"):
        Settings.from_env({"PROPDEV_TRUSTED_PROXIES": "proxy.example"})


# -- through the node's app: the in-process client's peer is 127.0.0.1 ----------------------


AppClient = Callable[..., Awaitable[tuple[Any, "RecordingLimiter"]]]


class RecordingLimiter:
    """Allows everything; remembers the keys it was asked about."""

    def __init__(self) -> None:
        self.keys: list[str] = []

    async def hit(self, key: str, rule: Rule) -> Decision:
        self.keys.append(f"{rule.name}:{key}")
        return Decision(True, 0.0)


@pytest.fixture
async def app_client(aiohttp_client: Any, tmp_path: Path) -> AsyncIterator[AppClient]:
    """Builds the node's app (embedded, store migrated) with a recording rate limiter."""
    nodes: list[Node] = []

    async def make(name: str = "node", **env: str) -> tuple[Any, RecordingLimiter]:
        settings = Settings.from_env({"PROPDEV_DATA_DIR": str(tmp_path / name), **env})
        node = Node(settings)
        nodes.append(node)
        await migrate(node.db)
        limiter = RecordingLimiter()
        node.rate_limiter = limiter
        return await aiohttp_client(make_app(node)), limiter

    yield make
    for node in nodes:
        await node.db.close()


SPOOF = {"X-Forwarded-For": "198.51.100.7"}


async def test_a_spoofed_header_from_an_untrusted_peer_changes_nothing(
    app_client: AppClient,
) -> None:
    client, limiter = await app_client()  # no trusted proxies
    with capture_logs() as logs:
        unmatched = await client.get("/nowhere", headers=SPOOF)  # rate-limited, then 404
        response = await client.get("/admin/api/v1/nodes", headers=SPOOF)  # integration log
    assert unmatched.status == 404 and response.status == 401
    assert "ip:127.0.0.1" in limiter.keys and not any("198.51.100.7" in k for k in limiter.keys)
    access = next(r for r in logs if r["event"] == "http_request")
    assert access["client"] == "127.0.0.1" and "via" not in access
    integration = next(r for r in logs if r["event"] == "integration_request")
    assert integration["client_ip"] == "127.0.0.1"


async def test_a_trusted_proxy_names_the_client(app_client: AppClient) -> None:
    client, limiter = await app_client(PROPDEV_TRUSTED_PROXIES="127.0.0.0/8")
    with capture_logs() as logs:
        unmatched = await client.get("/nowhere", headers=SPOOF)  # rate-limited, then 404
        response = await client.get("/admin/api/v1/nodes", headers=SPOOF)  # integration log
    assert unmatched.status == 404 and response.status == 401
    assert "ip:198.51.100.7" in limiter.keys and "ip:127.0.0.1" not in limiter.keys
    access = next(r for r in logs if r["event"] == "http_request")
    assert access["client"] == "198.51.100.7" and access["via"] == "127.0.0.1"
    integration = next(r for r in logs if r["event"] == "integration_request")
    assert integration["client_ip"] == "198.51.100.7"


async def test_metrics_are_served_only_to_allowed_scrapers(app_client: AppClient) -> None:
    allowed, _ = await app_client("a")  # default: loopback
    response = await allowed.get("/metrics")
    assert response.status == 200 and "propdev_" in await response.text()

    excluded, _ = await app_client("b", PROPDEV_METRICS_ALLOW="192.0.2.0/24")
    refused = await excluded.get("/metrics")
    assert refused.status == 404 and "propdev_" not in await refused.text()

    # Through a trusted proxy, the client behind it is judged, not the proxy.
    proxied, _ = await app_client("c", PROPDEV_TRUSTED_PROXIES="127.0.0.0/8")
    assert (await proxied.get("/metrics", headers=SPOOF)).status == 404
    assert (await proxied.get("/metrics")).status == 200


async def test_no_response_names_server_versions(app_client: AppClient) -> None:
    client, _ = await app_client(PROPDEV_METRICS_ALLOW="192.0.2.0/24")
    answers = [
        await client.get("/openapi.json"),  # 200
        await client.get("/nowhere"),  # 404 unmatched
        await client.get("/metrics"),  # 404 from the handler
        await client.post("/healthz"),  # 405
        await client.get("/api/v1/me"),  # 401 problem
        await client.post("/oauth/token", data={"grant_type": "x" * 70_000}),  # 413
    ]
    statuses = [answer.status for answer in answers]
    assert statuses == [200, 404, 404, 405, 401, 413]
    for answer in answers:
        assert answer.headers["Server"] == "propdev"
