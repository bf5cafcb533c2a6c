"""The vendor simulator and a node that calls it, both ``run.py`` processes on free ports, with
the demo resident ``anna`` logged in through the OAuth flow."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from tests.conftest import free_port
from tests.support.oauth_client import login
from tests.support.processes import ca_file, cli_env, running, trusting


@dataclass(frozen=True, slots=True)
class NodeAndVendor:
    http: aiohttp.ClientSession
    url: str
    sim_url: str
    token: str


@contextlib.asynccontextmanager
async def node_and_vendor(
    data_dir: Path, logs: Path, **variables: str
) -> AsyncIterator[NodeAndVendor]:
    """``partner-sim`` and ``serve`` on a seeded ``data_dir``, both with ``cli_env(data_dir,
    **variables)``; the client trusts the project CA; anna's access token."""
    sim_port, node_port = free_port(), free_port()
    while node_port == sim_port:
        node_port = free_port()
    sim_url, url = f"https://127.0.0.1:{sim_port}", f"https://127.0.0.1:{node_port}"
    creds = json.loads((data_dir / "demo-credentials.json").read_text())
    anna = next(r for r in creds["residents"] if r["username"] == "anna")
    env = cli_env(data_dir, **variables)
    connector = aiohttp.TCPConnector(ssl=trusting(ca_file(data_dir)))
    async with (
        aiohttp.ClientSession(connector=connector) as http,
        running(
            "partner-sim",
            ["partner-sim", "--port", str(sim_port)],
            {**env, "PROPDEV_CALLBACK_URL": url},
            logs,
            ready_url=f"{sim_url}/sim/v1/faults",
            ca=ca_file(data_dir),
        ),
        running(
            "node",
            ["serve"],
            {
                **env,
                "PROPDEV_PORT": str(node_port),
                "PROPDEV_PARTNER_URL": sim_url,
                "PROPDEV_RATE_LIMIT": "0",
            },
            logs,
            ready_url=f"{url}/healthz",
            ca=ca_file(data_dir),
        ),
    ):
        tokens = await login(
            http,
            url,
            client_id=creds["mobile_client_id"],
            redirect_uri=creds["redirect_uri"],
            username="anna",
            password=anna["password"],
        )
        yield NodeAndVendor(http, url, sim_url, str(tokens["access_token"]))
