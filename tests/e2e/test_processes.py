"""The real thing: ``run.py`` commands as separate OS processes, the vendor as its own server."""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.conftest import free_port
from tests.support.oauth_client import login
from tests.support.processes import ca_file, cli_env, run_cli, running, trusting

pytestmark = pytest.mark.slow

Json = Any


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def credentials(data_dir: Path) -> dict[str, Any]:
    return dict(json.loads((data_dir / "demo-credentials.json").read_text()))


def resident(creds: dict[str, Any], username: str) -> dict[str, Any]:
    return next(r for r in creds["residents"] if r["username"] == username)


def two_free_ports() -> tuple[int, int]:
    first = free_port()
    second = free_port()
    while second == first:
        second = free_port()
    return first, second


async def seed(data_dir: Path) -> dict[str, Any]:
    result = await run_cli(["seed-demo"], cli_env(data_dir))
    assert result.returncode == 0, str(result)
    return credentials(data_dir)


async def token_for(http: aiohttp.ClientSession, url: str, creds: dict[str, Any], name: str) -> str:
    tokens = await login(
        http,
        url,
        client_id=creds["mobile_client_id"],
        redirect_uri=creds["redirect_uri"],
        username=name,
        password=resident(creds, name)["password"],
    )
    return str(tokens["access_token"])


async def open_door(
    http: aiohttp.ClientSession, url: str, token: str, access_point_id: str
) -> tuple[int, Json, dict[str, str]]:
    """POST .../open: status, body and headers."""
    async with http.post(
        f"{url}/api/v1/access-points/{access_point_id}/open", headers=bearer(token)
    ) as resp:
        body = await resp.json(content_type=None)
        return resp.status, body, dict(resp.headers)


async def get_json(http: aiohttp.ClientSession, url: str, token: str | None = None) -> Json:
    async with http.get(url, headers=bearer(token) if token else None) as resp:
        assert resp.status == 200, (url, resp.status, await resp.text())
        return await resp.json()


async def set_faults(http: aiohttp.ClientSession, sim_url: str, **faults: object) -> None:
    async with http.post(f"{sim_url}/sim/v1/faults", json=faults) as resp:
        assert resp.status == 200, await resp.text()


@pytest.fixture
async def http(tmp_path: Path) -> AsyncIterator[aiohttp.ClientSession]:
    """A client trusting the project CA of ``tmp_path/data`` (created by the first seed)."""
    data_dir = tmp_path / "data"
    await seed(data_dir)
    connector = aiohttp.TCPConnector(ssl=trusting(ca_file(data_dir)))
    async with aiohttp.ClientSession(connector=connector) as session:
        yield session


async def test_seed_demo_prints_json_and_seeding_again_changes_nothing(tmp_path: Path) -> None:
    env = cli_env(tmp_path / "data")
    first = await run_cli(["seed-demo"], env)
    assert first.returncode == 0, str(first)
    assert isinstance(json.loads(first.stdout), dict), str(first)
    written = (tmp_path / "data" / "demo-credentials.json").read_bytes()

    second = await run_cli(["seed-demo"], env)
    assert second.returncode == 0, str(second)
    assert isinstance(json.loads(second.stdout), dict), str(second)
    assert (tmp_path / "data" / "demo-credentials.json").read_bytes() == written


async def test_a_node_talks_to_the_vendor_simulator_running_as_its_own_https_server(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    data_dir = tmp_path / "data"
    creds = credentials(data_dir)
    sim_port, node_port = two_free_ports()
    sim_url, url = f"https://127.0.0.1:{sim_port}", f"https://127.0.0.1:{node_port}"
    node_env = cli_env(
        data_dir,
        PROPDEV_PORT=str(node_port),
        PROPDEV_PARTNER_URL=sim_url,
        PROPDEV_RATE_LIMIT="0",
        PROPDEV_PARTNER_TIMEOUT="1",
        PROPDEV_BREAKER_FAILURES="3",
    )
    anna = resident(creds, "anna")
    door = anna["access_point_ids"][0]
    device_id = next(a["device_id"] for a in creds["access_points"] if a["id"] == door)

    async with (
        running(
            "partner-sim",
            ["partner-sim", "--port", str(sim_port)],
            cli_env(data_dir),
            tmp_path / "logs",
            ready_url=f"{sim_url}/sim/v1/faults",
            ca=ca_file(data_dir),
        ),
        running(
            "node",
            ["serve"],
            node_env,
            tmp_path / "logs",
            ready_url=f"{url}/healthz",
            ca=ca_file(data_dir),
        ),
    ):
        token = await token_for(http, url, creds, "anna")

        # The vendor confirms: granted, and it received exactly that command.
        status, body, _ = await open_door(http, url, token, door)
        assert status == 200, body
        assert body["status"] == "granted" and body["access_point_id"] == door
        received = await get_json(http, f"{sim_url}/sim/v1/commands")
        assert len(received) == 1, received
        assert received[0]["request_id"] == body["command_id"]
        assert received[0]["command"] == "open" and received[0]["device_id"] == device_id

        # The vendor refuses: not a success, and the resident sees it in the history.
        last_event = max(e["id"] for e in await get_json(http, f"{url}/api/v1/events", token))
        await set_faults(http, sim_url, mode="deny")
        status, body, headers = await open_door(http, url, token, door)
        assert status == 403, body
        assert headers["Content-Type"].startswith("application/problem+json")
        assert body["status"] == 403
        events = await get_json(http, f"{url}/api/v1/events?after={last_event}", token)
        received = await get_json(http, f"{sim_url}/sim/v1/commands")
        assert len(received) == 2, received
        assert [(e["type"], e["access_point_id"], e["command_id"]) for e in events] == [
            ("access.denied", door, received[1]["request_id"])
        ]

        # The vendor is slower than PROPDEV_PARTNER_TIMEOUT=1: our timeout answers, a 504 (the
        # vendor itself would have answered 200 after 5 s).
        await set_faults(http, sim_url, mode="slow", latency_ms=5000)
        status, body, _ = await open_door(http, url, token, door)
        assert (status, body["type"].rsplit("/", 1)[-1]) == (504, "partner-timeout"), body

        # Back to normal: the next open goes through (and resets the breaker's count).
        await set_faults(http, sim_url, mode="ok")
        status, body, _ = await open_door(http, url, token, door)
        assert status == 200, body

        # PROPDEV_BREAKER_FAILURES=3 vendor errors open the circuit ...
        await set_faults(http, sim_url, mode="error")
        for _ in range(3):
            status, body, headers = await open_door(http, url, token, door)
            assert 500 <= status < 600 and status != 503, (status, body)
        sent = await get_json(http, f"{sim_url}/sim/v1/commands")

        # ... so even with the vendor healthy again, the node does not call it: 503 at once.
        await set_faults(http, sim_url, mode="ok")
        status, body, headers = await open_door(http, url, token, door)
        assert (status, body["type"].rsplit("/", 1)[-1]) == (503, "partner-circuit-open"), body
        assert int(headers["Retry-After"]) >= 1, headers
        assert await get_json(http, f"{sim_url}/sim/v1/commands") == sent


async def test_serve_stops_cleanly_on_ctrl_c_and_starts_again_with_its_data(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    data_dir = tmp_path / "data"
    creds = credentials(data_dir)
    port = free_port()
    url = f"https://127.0.0.1:{port}"
    env = cli_env(data_dir, PROPDEV_PORT=str(port), PROPDEV_RATE_LIMIT="0")
    door = resident(creds, "anna")["access_point_ids"][0]

    async with running(
        "node-1",
        ["serve"],
        env,
        tmp_path / "logs",
        ready_url=f"{url}/healthz",
        ca=ca_file(data_dir),
    ) as node:
        token = await token_for(http, url, creds, "anna")
        status, body, _ = await open_door(http, url, token, door)
        assert status == 200, body
        before = await get_json(http, f"{url}/api/v1/events", token)
        assert body["command_id"] in {e["command_id"] for e in before}
        assert await node.stop() == 0, node.output()

    async with running(
        "node-2",
        ["serve"],
        env,
        tmp_path / "logs",
        ready_url=f"{url}/healthz",
        ca=ca_file(data_dir),
    ):
        token = await token_for(http, url, creds, "anna")
        after = await get_json(http, f"{url}/api/v1/events", token)
        assert after == before


async def test_audit_verify_passes_on_the_chain_and_fails_once_a_row_is_edited(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    data_dir = tmp_path / "data"
    creds = credentials(data_dir)
    port = free_port()
    url = f"https://127.0.0.1:{port}"
    env = cli_env(data_dir, PROPDEV_PORT=str(port), PROPDEV_RATE_LIMIT="0")
    permitted = resident(creds, "vera")["access_point_ids"][0]
    forbidden = next(a["id"] for a in creds["access_points"] if a["id"] != permitted)

    async with running(
        "node", ["serve"], env, tmp_path / "logs", ready_url=f"{url}/healthz", ca=ca_file(data_dir)
    ):
        token = await token_for(http, url, creds, "vera")
        assert (await open_door(http, url, token, permitted))[0] == 200
        assert (await open_door(http, url, token, forbidden))[0] == 403
        assert (await open_door(http, url, token, permitted))[0] == 200

    verified = await run_cli(["audit", "verify"], cli_env(data_dir))
    assert verified.returncode == 0, str(verified)
    report = json.loads(verified.stdout)
    assert report["ok"] is True, report

    with contextlib.closing(sqlite3.connect(data_dir / "propdev.db")) as db, db:
        row_id, decision = db.execute(
            "SELECT id, decision FROM audit ORDER BY id LIMIT 1 OFFSET 1"
        ).fetchone()
        flipped = "granted" if decision == "denied" else "denied"
        db.execute("UPDATE audit SET decision = ? WHERE id = ?", (flipped, row_id))

    tampered = await run_cli(["audit", "verify"], cli_env(data_dir))
    assert tampered.returncode == 1, str(tampered)
    assert json.loads(tampered.stdout)["ok"] is False, str(tampered)
