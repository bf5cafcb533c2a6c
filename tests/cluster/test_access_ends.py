"""Disabling a staff account, or removing a household member, ends their access on every node
of the cluster within a second of the answer: node B, which verified and cached the token
before, refuses it. Only the revocation broadcast can tell B (access tokens are not in the
store)."""

from __future__ import annotations

import time
import urllib.parse

import pytest

from tests.cluster.conftest import Cluster, bearer, eventually
from tests.support.oauth_client import login

pytestmark = pytest.mark.slow

WITHIN = 1.0  # the bound, measured from the DELETE's answer
API = "/admin/api/v1"


async def _status(cluster: Cluster, url: str, token: str) -> int:
    async with cluster.http.get(f"{url}{API}/access-points", headers=bearer(token)) as resp:
        return resp.status


async def test_a_disabled_staff_account_is_refused_on_every_node_within_a_second(
    cluster: Cluster,
) -> None:
    a, b = cluster.nodes[0], cluster.nodes[1]
    admin = cluster.creds["operator"]
    common = {
        "client_id": cluster.creds["mobile_client_id"],
        "redirect_uri": cluster.creds["redirect_uri"],
    }
    boss = await login(
        cluster.http,
        a.url,
        username=admin["username"],
        password=admin["password"],
        totp_secret=admin["totp_secret"],
        **common,
    )
    boss_token = str(boss["access_token"])
    body = {"username": "relief", "full_name": "Relief", "roles": ["operator"], "site_ids": None}
    async with cluster.http.post(
        f"{a.url}{API}/operators", json=body, headers=bearer(boss_token)
    ) as resp:
        assert resp.status == 201, await resp.text()
        created = await resp.json()
    password = "relief-correct-horse-battery"
    async with cluster.http.post(
        f"{b.url}/api/v1/activation",
        json={
            "username": "relief",
            "activation_code": created["activation_code"],
            "password": password,
        },
    ) as resp:
        assert resp.status == 200, await resp.text()
        uri = (await resp.json())["totp_uri"]
    secret = urllib.parse.parse_qs(urllib.parse.urlparse(uri).query)["secret"][0]
    tokens = await login(
        cluster.http, a.url, username="relief", password=password, totp_secret=secret, **common
    )
    token = str(tokens["access_token"])
    for node in cluster.nodes:
        assert await _status(cluster, node.url, token) == 200, node.name  # verified, cached

    async with cluster.http.delete(
        f"{a.url}{API}/operators/{created['id']}", headers=bearer(boss_token)
    ) as resp:
        assert resp.status == 204, await resp.text()
    answered = time.monotonic()

    async def refused_everywhere() -> bool:
        statuses = [await _status(cluster, node.url, token) for node in cluster.nodes]
        return all(s == 401 for s in statuses)

    await eventually(refused_everywhere, within=WITHIN, what="refused on every node", every=0.02)
    assert time.monotonic() - answered < WITHIN
    assert await _status(cluster, b.url, boss_token) == 200  # only that account


async def test_a_removed_household_member_is_refused_on_every_node_within_a_second(
    cluster: Cluster,
) -> None:
    a, b = cluster.nodes[0], cluster.nodes[1]
    anna = await cluster.token("anna")  # an owner (the demo)
    common = {
        "client_id": cluster.creds["mobile_client_id"],
        "redirect_uri": cluster.creds["redirect_uri"],
    }
    members = "/api/v1/household/members"
    async with cluster.http.post(
        f"{a.url}{members}", json={"full_name": "Lodger"}, headers=bearer(anna)
    ) as resp:
        assert resp.status == 201, await resp.text()
        invited = await resp.json()
    password = "lodger-correct-horse-battery"
    async with cluster.http.post(
        f"{b.url}/api/v1/activation",
        json={
            "username": invited["username"],
            "activation_code": invited["activation_code"],
            "password": password,
        },
    ) as resp:
        assert resp.status == 200, await resp.text()
    tokens = await login(
        cluster.http, a.url, username=invited["username"], password=password, **common
    )
    token = str(tokens["access_token"])

    async def status(url: str) -> int:
        async with cluster.http.get(f"{url}/api/v1/access-points", headers=bearer(token)) as resp:
            return resp.status

    for node in cluster.nodes:
        assert await status(node.url) == 200, node.name  # verified, cached

    async with cluster.http.delete(
        f"{a.url}{members}/{invited['id']}", headers=bearer(anna)
    ) as resp:
        assert resp.status == 204, await resp.text()
    answered = time.monotonic()

    async def refused_everywhere() -> bool:
        return all([await status(node.url) == 401 for node in cluster.nodes])

    await eventually(refused_everywhere, within=WITHIN, what="refused on every node", every=0.02)
    assert time.monotonic() - answered < WITHIN
