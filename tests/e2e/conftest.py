"""A real node over HTTPS (in this event loop), with the demo estate seeded."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from propdev.config import Settings
from propdev.devkit import seed_demo
from propdev.node import serve
from propdev.pki import client_context
from tests.conftest import free_port
from tests.support.oauth_client import login
from tests.support.postgres import fresh_database
from tests.support.vendor_process import partner_sim


@dataclass
class RunningNode:
    settings: Settings
    credentials: dict[str, Any]
    http: aiohttp.ClientSession

    @property
    def url(self) -> str:
        return self.settings.public_url

    def resident(self, username: str) -> dict[str, Any]:
        return next(r for r in self.credentials["residents"] if r["username"] == username)

    async def token_for(self, username: str) -> str:
        if username == self.credentials["operator"]["username"]:
            op = self.credentials["operator"]
            tokens = await login(
                self.http,
                self.url,
                client_id=self.credentials["mobile_client_id"],
                redirect_uri=self.credentials["redirect_uri"],
                username=op["username"],
                password=op["password"],
                totp_secret=op["totp_secret"],
            )
        else:
            user = self.resident(username)
            tokens = await login(
                self.http,
                self.url,
                client_id=self.credentials["mobile_client_id"],
                redirect_uri=self.credentials["redirect_uri"],
                username=username,
                password=user["password"],
            )
        return str(tokens["access_token"])


def node_settings(data_dir: Path, **extra: str) -> Settings:
    env = {
        "PROPDEV_DATA_DIR": str(data_dir),
        "PROPDEV_PORT": str(free_port()),
        "PROPDEV_NODE_ID": "test-node",
        "PROPDEV_RATE_LIMIT": "0",
        "PROPDEV_LOG_LEVEL": "warning",
        **extra,
    }
    return Settings.from_env(env)


@contextlib.asynccontextmanager
async def running_node(settings: Settings, **serve_options: Any) -> AsyncIterator[RunningNode]:
    credentials = await seed_demo(settings)
    ready = asyncio.Event()
    task = asyncio.create_task(serve(settings, ready=ready, **serve_options))
    waiter = asyncio.create_task(ready.wait())
    done, _ = await asyncio.wait({task, waiter}, timeout=30, return_when=asyncio.FIRST_COMPLETED)
    if waiter not in done:
        waiter.cancel()
        if task in done:
            task.result()  # raises the start-up error
        raise TimeoutError("node did not start")
    connector = aiohttp.TCPConnector(ssl=client_context(settings.pki_dir))
    try:
        async with aiohttp.ClientSession(connector=connector) as http:
            yield RunningNode(settings, credentials, http)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


@contextlib.asynccontextmanager
async def running_node_and_vendor(data_dir: Path, **extra: str) -> AsyncIterator[RunningNode]:
    """A node (in this loop) whose vendors are ``run.py partner-sim``, its own process over
    HTTPS (``PROPDEV_PARTNER_URL``), calling the node back; ``credentials["partner_sim_url"]``
    is that process's URL (its control API at ``/sim/v1``, ``/sim/acme/v1``)."""
    sim_port = free_port()
    settings = node_settings(data_dir, PROPDEV_PARTNER_URL=f"https://127.0.0.1:{sim_port}", **extra)
    while settings.port == sim_port:
        settings = node_settings(data_dir, PROPDEV_PARTNER_URL=settings.partner_url or "", **extra)
    await seed_demo(settings)  # the partners' certificates and keys the vendor process reads
    async with (
        partner_sim(data_dir, callback_url=settings.public_url, port=sim_port),
        running_node(settings) as running,
    ):
        yield running


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[RunningNode]:
    async with running_node(node_settings(tmp_path)) as running:
        yield running


@pytest.fixture
async def pg_node(tmp_path: Path) -> AsyncIterator[RunningNode]:
    """The same node with its store on the machine's PostgreSQL."""
    with fresh_database() as url:
        async with running_node(node_settings(tmp_path, PROPDEV_DATABASE_URL=url)) as running:
            yield running
