"""A password changed through node A signs the account's other session out at node B too:
B had verified and cached that session's access token, so only the broadcast of the revoked
grant (its ``sid``) can make B refuse it."""

from __future__ import annotations

import pytest

from tests.cluster.conftest import Cluster, bearer, eventually
from tests.support.oauth_client import login

pytestmark = pytest.mark.slow

WITHIN = 5.0  # a revocation arrives within about a second; this only catches one that never does


async def _status(cluster: Cluster, url: str, token: str) -> int:
    async with cluster.http.get(f"{url}/api/v1/me/sessions", headers=bearer(token)) as resp:
        return resp.status


async def test_a_password_change_at_one_node_refuses_the_other_session_at_another(
    cluster: Cluster,
) -> None:
    a, b = cluster.nodes[0], cluster.nodes[1]
    anna = cluster.resident("anna")

    async def sign_in() -> str:
        tokens = await login(
            cluster.http,
            a.url,
            client_id=cluster.creds["mobile_client_id"],
            redirect_uri=cluster.creds["redirect_uri"],
            username="anna",
            password=anna["password"],
        )
        return str(tokens["access_token"])

    here, there = await sign_in(), await sign_in()
    assert await _status(cluster, b.url, there) == 200  # B verified it and caches it
    async with cluster.http.post(
        f"{a.url}/api/v1/me/password",
        json={"current_password": anna["password"], "new_password": "a brand new passphrase"},
        headers=bearer(here),
    ) as resp:
        assert resp.status == 204, await resp.text()

    async def refused_at_b() -> bool:
        return await _status(cluster, b.url, there) == 401

    await eventually(refused_at_b, within=WITHIN, what="the other session refused at B", every=0.02)
    for node in cluster.nodes:
        assert await _status(cluster, node.url, there) == 401, node.name
        assert await _status(cluster, node.url, here) == 200, node.name  # this session stays
