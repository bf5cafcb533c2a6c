"""The restore drill, as an operator runs it: a node serving opens, ``backup create`` meanwhile,
the node stopped, ``backup restore`` into a new empty data dir and store, a node started on
them, ``audit verify`` passing, a resident signing in and opening a door. SQLite and PostgreSQL.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.conftest import free_port
from tests.support.eventually import eventually
from tests.support.oauth_client import login
from tests.support.postgres import fresh_database
from tests.support.processes import ca_file, cli_env, run_cli, running, trusting

pytestmark = pytest.mark.slow

OPENERS = 3


@contextlib.contextmanager
def stores(backend: str) -> Iterator[tuple[dict[str, str], dict[str, str]]]:
    """The store variables of the old and the new installation."""
    if backend == "sqlite":
        yield {}, {}
        return
    with fresh_database() as old, fresh_database() as new:
        yield {"PROPDEV_DATABASE_URL": old}, {"PROPDEV_DATABASE_URL": new}


async def sign_in(http: aiohttp.ClientSession, url: str, creds: dict[str, Any]) -> str:
    anna = next(r for r in creds["residents"] if r["username"] == "anna")
    tokens = await login(
        http,
        url,
        client_id=creds["mobile_client_id"],
        redirect_uri=creds["redirect_uri"],
        username="anna",
        password=anna["password"],
    )
    return str(tokens["access_token"])


async def open_door(http: aiohttp.ClientSession, url: str, token: str, door: str) -> int:
    async with http.post(
        f"{url}/api/v1/access-points/{door}/open",
        headers={"Authorization": f"Bearer {token}"},
    ) as resp:
        await resp.read()
        return resp.status


async def audit_verify(env: dict[str, str]) -> dict[str, Any]:
    verified = await run_cli(["audit", "verify"], env)
    assert verified.returncode == 0, str(verified)
    report: dict[str, Any] = json.loads(verified.stdout)
    assert report["ok"] is True, report
    return report


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
async def test_a_backup_taken_under_load_restores_into_a_node_that_verifies_and_opens(
    tmp_path: Path, backend: str
) -> None:
    old_dir, new_dir, logs = tmp_path / "old", tmp_path / "new", tmp_path / "logs"
    backup = tmp_path / "drill.backup"
    with stores(backend) as (old_store, new_store):
        old_env = cli_env(old_dir, PROPDEV_RATE_LIMIT="0", **old_store)
        seeded = await run_cli(["seed-demo"], old_env)
        assert seeded.returncode == 0, str(seeded)
        creds = json.loads((old_dir / "demo-credentials.json").read_text())
        door = next(r for r in creds["residents"] if r["username"] == "anna")["access_point_ids"][0]
        master_key = (old_dir / "keys" / "master.key").read_text().strip()

        port = free_port()
        url = f"https://127.0.0.1:{port}"
        connector = aiohttp.TCPConnector(ssl=trusting(ca_file(old_dir)))
        async with (
            aiohttp.ClientSession(connector=connector) as http,
            running(
                "old-node",
                ["serve"],
                {**old_env, "PROPDEV_PORT": str(port)},
                logs,
                ready_url=f"{url}/healthz",
                ca=ca_file(old_dir),
            ),
        ):
            token = await sign_in(http, url, creds)
            assert await open_door(http, url, token, door) == 200
            statuses: list[int] = []
            stop = asyncio.Event()

            async def opener() -> None:
                while not stop.is_set():
                    statuses.append(await open_door(http, url, token, door))

            openers = [asyncio.create_task(opener()) for _ in range(OPENERS)]
            try:
                # the backup starts once the load runs, and runs while it does
                await eventually(
                    lambda: asyncio.sleep(0, len(statuses) >= OPENERS),
                    within=30,
                    what="the openers under way",
                    every=0.01,
                )
                made = await run_cli(["backup", "create", str(backup)], old_env)
                during = len(statuses)
            finally:
                stop.set()
                await asyncio.gather(*openers)
            assert made.returncode == 0, str(made)
            assert during >= OPENERS and set(statuses) == {200}, statuses

        # A new, empty installation: the same master key, from outside the data dir.
        new_env = cli_env(
            new_dir, PROPDEV_RATE_LIMIT="0", PROPDEV_MASTER_KEY=master_key, **new_store
        )
        restored = await run_cli(["backup", "restore", str(backup)], new_env)
        assert restored.returncode == 0, str(restored)
        assert not (new_dir / "keys" / "master.key").exists()
        assert json.loads(restored.stdout)["cluster_id"] == json.loads(made.stdout)["cluster_id"]

        report = await audit_verify(new_env)
        assert report["checked"] >= 1 + OPENERS, report

        # the same address (issuer) as before: the installation is back where it was
        connector = aiohttp.TCPConnector(ssl=trusting(ca_file(new_dir)))
        async with (
            aiohttp.ClientSession(connector=connector) as http,
            running(
                "new-node",
                ["serve"],
                {**new_env, "PROPDEV_PORT": str(port)},
                logs,
                ready_url=f"{url}/healthz",
                ca=ca_file(new_dir),
            ),
        ):
            # the restored signing key (and issuer) still verify a token of the old node
            assert await open_door(http, url, token, door) == 200
            fresh = await sign_in(http, url, creds)
            assert await open_door(http, url, fresh, door) == 200
        after = await audit_verify(new_env)
        assert after["checked"] >= report["checked"] + 2, (report, after)
