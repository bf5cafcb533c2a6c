"""The in-process simulator's control API (``/sim/...``, no authentication) is on the node's
listener only in embedded mode on a loopback address; elsewhere it is absent and the startup
log says why. Tests connect to 127.0.0.1 only, whatever the node listens on."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from structlog.testing import capture_logs

from tests.conftest import free_port
from tests.e2e.conftest import node_settings, running_node


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def control_api_events(logs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in logs if e["event"] == "simulator_control_api"]


async def test_a_node_listening_beyond_loopback_has_no_simulator_control_api_and_logs_why(
    tmp_path: Path,
) -> None:
    port = free_port()
    settings = node_settings(
        tmp_path,
        PROPDEV_HOST="0.0.0.0",  # every interface; the test connects to 127.0.0.1
        PROPDEV_PORT=str(port),
        PROPDEV_PUBLIC_URL=f"https://127.0.0.1:{port}",
    )
    with capture_logs() as logs:
        async with running_node(settings) as node:
            url = node.url
            async with node.http.patch(
                f"{url}/sim/v1/devices/sim-door-1", json={"online": False}
            ) as resp:
                assert resp.status == 404
            async with node.http.post(
                f"{url}/sim/v1/faults", json={"mode": "error", "latency_ms": 0}
            ) as resp:
                assert resp.status == 404
            async with node.http.post(f"{url}/sim/acme/v1/faults", json={"mode": "error"}) as r:
                assert r.status == 404
            async with node.http.get(f"{url}/sim/v1/commands") as resp:
                assert resp.status == 404
            # The in-process simulator still is the vendor: the door is online and opens.
            token = await node.token_for("anna")
            door = node.resident("anna")["access_point_ids"][0]
            async with node.http.post(
                f"{url}/api/v1/access-points/{door}/open", headers=bearer(token)
            ) as resp:
                assert resp.status == 200, await resp.text()
    assert [(e["mounted"], e["reason"], e["host"]) for e in control_api_events(logs)] == [
        (False, "listener_not_loopback", "0.0.0.0")
    ]


async def test_an_embedded_node_on_loopback_mounts_it_with_a_warning(tmp_path: Path) -> None:
    with capture_logs() as logs:
        async with running_node(node_settings(tmp_path)) as node:
            async with node.http.patch(
                f"{node.url}/sim/v1/devices/sim-door-2", json={"online": False}
            ) as resp:
                assert resp.status == 200
                assert (await resp.json())["online"] is False
            async with node.http.get(f"{node.url}/sim/acme/v1/faults") as resp:
                assert resp.status == 200
    [event] = control_api_events(logs)
    assert event["mounted"] is True and event["reason"] == "embedded_on_loopback"
    assert event["log_level"] == "warning" and "development tool" in event["note"]


async def test_with_a_partner_url_it_is_absent_and_the_log_names_the_setting(
    tmp_path: Path,
) -> None:
    """No in-process simulator: the vendor is elsewhere (nothing is called at start)."""
    settings = node_settings(tmp_path, PROPDEV_PARTNER_URL=f"https://127.0.0.1:{free_port()}")
    with capture_logs() as logs:
        async with running_node(settings) as node:
            async with node.http.get(f"{node.url}/sim/v1/commands") as resp:
                assert resp.status == 404
    assert [(e["mounted"], e["reason"]) for e in control_api_events(logs)] == [
        (False, "partner_url_set")
    ]
