"""Revocations reach every node over the bus's ``revoked:`` channel: an access token revoked
through node A (RFC 7009), a moved-out resident and a partner's certificate revoked by
``run.py pki revoke-partner`` are refused at node B, also on a connection B had already
accepted. Only the broadcast can tell B: it has verified and cached the token before, the
store does not hold access tokens, and the certificate is revoked on a copy of the PKI, so the
CRL file the nodes read never changes."""

from __future__ import annotations

import contextlib
import json
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from propdev.pki import client_context, partner_paths
from propdev.pki.crl import crl_path
from tests.cluster.conftest import Cluster, bearer, eventually
from tests.support.oauth_client import login
from tests.support.partner import PartnerClient, event
from tests.support.processes import run_cli

pytestmark = pytest.mark.slow

# A revocation reaches every node within about a second; five times that only catches one that
# never arrives (no other path can make B refuse here, so the bound need not discriminate).
WITHIN = 5.0
DEVICE = "sim-door-1"


async def _me(cluster: Cluster, url: str, token: str) -> int:
    async with cluster.http.get(f"{url}/api/v1/access-points", headers=bearer(token)) as resp:
        return resp.status


async def test_an_access_token_revoked_through_one_node_is_refused_at_another(
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

    await eventually(
        lambda: _refused(cluster, b.url, access), within=WITHIN, what="refused at B", every=0.02
    )
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


async def test_a_moved_out_residents_token_is_refused_at_another_node(cluster: Cluster) -> None:
    a, b = cluster.nodes[0], cluster.nodes[1]
    anna, operator = cluster.resident("anna"), cluster.creds["operator"]
    access = await cluster.token("anna")  # a login at A
    assert await _me(cluster, b.url, access) == 200  # B verified it and caches it
    boris = await cluster.token("boris")
    tokens = await login(
        cluster.http,
        a.url,
        client_id=cluster.creds["mobile_client_id"],
        redirect_uri=cluster.creds["redirect_uri"],
        username=operator["username"],
        password=operator["password"],
        totp_secret=operator["totp_secret"],
    )
    async with cluster.http.post(
        f"{a.url}/admin/api/v1/residents/{anna['id']}/move-out",
        headers=bearer(str(tokens["access_token"])),
    ) as resp:
        assert resp.status == 200, await resp.text()

    await eventually(
        lambda: _refused(cluster, b.url, access), within=WITHIN, what="refused at B", every=0.02
    )
    for node in cluster.nodes:
        assert await _me(cluster, node.url, access) == 401, node.name
        assert await _me(cluster, node.url, boris) == 200, node.name  # only her


async def test_a_partner_certificate_revoked_by_the_cli_is_refused_at_every_node(
    cluster: Cluster, tmp_path: Path
) -> None:
    b = cluster.nodes[1]
    crl = crl_path(cluster.data_dir / "pki")
    crl_before = crl.read_bytes()
    # The operator's copy of the PKI: the CLI writes its CRL there, so the nodes' CRL file stays
    # as it was and only the announcement on the bus can make them refuse.
    elsewhere = tmp_path / "operator"
    shutil.copytree(cluster.data_dir / "pki", elsewhere / "pki")
    cli_env = {**cluster.nodes[0].env, "PROPDEV_DATA_DIR": str(elsewhere)}
    async with keep_alive_partner(cluster, b.url) as partner:
        token = await partner.token()
        status, body = await partner.post([event(DEVICE, "device_online")], token=token)
        assert status == 202, body

        done = await run_cli(["pki", "revoke-partner", "simulator"], cli_env)
        assert done.returncode == 0, str(done)
        assert json.loads(done.stdout.strip().splitlines()[-1])["announced"] is True, str(done)

        async def refused() -> tuple[int, Any] | None:
            answer = await partner.post([event(DEVICE, "device_online")], token=token)
            return answer if answer[0] == 401 else None

        status, body = await eventually(
            refused, within=WITHIN, what="the partner refused at B", every=0.02
        )
        assert body["status"] == 401, body

    # A new connection to any node: the handshake passes (the nodes' CRL does not list the
    # certificate), the token bound to the revoked certificate is refused.
    for node in cluster.nodes:
        async with keep_alive_partner(cluster, node.url) as partner:
            status, _ = await partner.post([event(DEVICE, "device_online")], token=token)
            assert status == 401, (node.name, status)
    assert crl.read_bytes() == crl_before  # refused through the bus alone
