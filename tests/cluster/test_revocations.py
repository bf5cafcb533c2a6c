"""Revocations reach every node within a second (the bus's ``revoked:`` channel): an access
token revoked through node A (RFC 7009) and a partner's certificate revoked by
``run.py pki revoke-partner`` are refused at node B, also on a connection B had already
accepted."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from propdev.pki import client_context, partner_paths
from tests.cluster.conftest import Cluster, bearer, eventually
from tests.support.oauth_client import login
from tests.support.partner import PartnerClient, event
from tests.support.processes import run_cli

pytestmark = pytest.mark.slow

WITHIN = 1.0  # seconds: the bound for a revocation to reach every node
DEVICE = "sim-door-1"


async def _me(cluster: Cluster, url: str, token: str) -> int:
    async with cluster.http.get(f"{url}/api/v1/access-points", headers=bearer(token)) as resp:
        return resp.status


async def test_an_access_token_revoked_through_one_node_is_refused_at_another_within_a_second(
    cluster: Cluster,
) -> None:
    a, b = cluster.nodes[0], cluster.nodes[1]
    anna = cluster.resident("anna")
    tokens = await login(
        cluster.http,
        a.url,
        client_id=cluster.creds["mobile_client_id"],
        redirect_uri=cluster.creds["redirect_uri"],
        username="anna",
        password=anna["password"],
    )
    access = str(tokens["access_token"])
    assert await _me(cluster, b.url, access) == 200  # B verified it and caches it
    other = await cluster.token("anna")  # another login's token of the same resident

    async with cluster.http.post(
        f"{a.url}/oauth/revoke",
        data={
            "token": access,
            "token_type_hint": "access_token",
            "client_id": cluster.creds["mobile_client_id"],
        },
    ) as resp:
        assert resp.status == 200, await resp.text()
    revoked_at = time.monotonic()

    await eventually(
        lambda: _refused(cluster, b.url, access), within=WITHIN, what="refused at B", every=0.02
    )
    assert time.monotonic() - revoked_at < WITHIN
    for node in cluster.nodes:
        assert await _me(cluster, node.url, access) == 401, node.name
        assert await _me(cluster, node.url, other) == 200, node.name  # only that token


async def _refused(cluster: Cluster, url: str, token: str) -> bool:
    return await _me(cluster, url, token) == 401


@contextlib.asynccontextmanager
async def keep_alive_partner(cluster: Cluster, url: str) -> AsyncIterator[PartnerClient]:
    """The simulator partner with its certificate over one kept-alive connection."""
    pki = cluster.data_dir / "pki"
    connector = aiohttp.TCPConnector(
        ssl=client_context(pki, partner_paths(pki, "simulator")), limit=1
    )
    async with aiohttp.ClientSession(connector=connector) as http:
        yield PartnerClient(http, url, cluster.data_dir, "simulator")


async def test_a_partner_certificate_revoked_by_the_cli_is_refused_at_every_node_within_a_second(
    cluster: Cluster,
) -> None:
    b = cluster.nodes[1]
    async with keep_alive_partner(cluster, b.url) as partner:
        token = await partner.token()
        status, body = await partner.post([event(DEVICE, "device_online")], token=token)
        assert status == 202, body

        done = await run_cli(["pki", "revoke-partner", "simulator"], cluster.nodes[0].env)
        assert done.returncode == 0, str(done)
        revoked_at = time.monotonic()

        async def refused() -> tuple[int, Any] | None:
            answer = await partner.post([event(DEVICE, "device_online")], token=token)
            return answer if answer[0] == 401 else None

        status, body = await eventually(
            refused, within=WITHIN, what="the partner refused at B", every=0.02
        )
        assert time.monotonic() - revoked_at < WITHIN
        assert body["status"] == 401, body

    # A new connection to any node is refused too (at the handshake once the CRL is reloaded,
    # or by the token's binding to the revoked certificate before that).
    for node in cluster.nodes:
        async with keep_alive_partner(cluster, node.url) as partner:
            try:
                status, _ = await partner.post([event(DEVICE, "device_online")], token=token)
            except aiohttp.ClientError:
                status = 0  # the TLS handshake failed
            assert status in (0, 401), (node.name, status)
