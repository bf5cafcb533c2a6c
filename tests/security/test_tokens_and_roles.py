"""Forged, expired, misdirected and under-privileged tokens against the running node."""

from __future__ import annotations

import datetime
import time
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from propdev.security import SigningKeys, create_user, open_vault
from propdev.storage import Database
from tests.e2e.conftest import RunningNode
from tests.security.helpers import claims_for, mint, sim_commands, unsigned
from tests.support.oauth_client import login

ADMIN_CALLS = [
    ("GET", "/admin/api/v1/actors"),
    ("POST", "/admin/api/v1/actors/device:ap-a-entrance/restart"),
    ("GET", "/admin/api/v1/nodes"),
    ("GET", "/admin/api/v1/breakers"),
    ("GET", "/admin/api/v1/audit"),
    ("GET", "/admin/api/v1/slo"),
]


async def _me(node: RunningNode, token: str) -> tuple[int, dict[str, str]]:
    async with node.http.get(
        f"{node.url}/api/v1/me", headers={"Authorization": f"Bearer {token}"}
    ) as resp:
        return resp.status, dict(resp.headers)


def _forgeries(node: RunningNode) -> dict[str, str]:
    anna = node.resident("anna")["id"]
    good = claims_for(node, anna)
    keys = SigningKeys.load_or_create(node.settings.pki_dir / "jwt")
    public_pem = keys.signing_key.public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    hs256 = jwt.api_jws.PyJWS()
    hs256._algorithms["HS256"].prepare_key = lambda key: key  # the classic confusion attack
    kid = keys.signing_key.kid
    valid = mint(node, good)
    head, _, sig = valid.split(".")
    other_body = mint(node, {**good, "sub": node.resident("boris")["id"]}).split(".")[1]
    return {
        "alg none": unsigned(good, {"alg": "none", "typ": "at+jwt", "kid": kid}),
        "HS256 keyed with the public key": hs256.encode(
            jwt.utils.force_bytes(__import__("json").dumps(good)),
            public_pem,
            algorithm="HS256",
            headers={"typ": "at+jwt", "kid": kid},
        ),
        "expired": mint(
            node, {**good, "exp": int(time.time()) - 60, "iat": int(time.time()) - 400}
        ),
        "issued in the future": mint(node, {**good, "iat": int(time.time()) + 120}),
        "wrong audience": mint(node, {**good, "aud": "https://other.example"}),
        "issuer prefix": mint(node, {**good, "iss": node.settings.public_url[:-1]}),
        "no jti": mint(node, {k: v for k, v in good.items() if k != "jti"}),
        "id token as access token": mint(node, good, typ="JWT"),
        "payload swapped": f"{head}.{other_body}.{sig}",
        "truncated": valid[:-10],
        "extra segment": valid + ".xyz",
        "garbage": "not-a-token",
        "unknown kid": jwt.encode(
            good,
            keys.signing_key.private_key,
            algorithm="PS256",
            headers={"typ": "at+jwt", "kid": "../../etc/passwd"},
        ),
    }


async def test_forged_and_misdirected_tokens_get_401_invalid_token(node: RunningNode) -> None:
    for name, token in _forgeries(node).items():
        status, headers = await _me(node, token)
        assert status == 401, name
        assert 'error="invalid_token"' in headers.get("WWW-Authenticate", ""), name


async def test_a_token_in_the_query_or_form_is_ignored(node: RunningNode) -> None:
    token = await node.token_for("anna")
    async with node.http.get(f"{node.url}/api/v1/me", params={"access_token": token}) as resp:
        assert resp.status == 401
        assert resp.headers["WWW-Authenticate"] == "Bearer"


async def test_a_resident_cannot_reach_the_admin_api(node: RunningNode) -> None:
    token = await node.token_for("anna")
    for method, path in ADMIN_CALLS:
        async with node.http.request(
            method, node.url + path, headers={"Authorization": f"Bearer {token}"}
        ) as resp:
            assert resp.status == 403, path


async def _operator_without_otp(node: RunningNode) -> str:
    """An account with the operator role but no TOTP secret, logged in through the form."""
    db = Database(node.settings.database_url)
    try:
        await open_vault(node.settings, db)
        await create_user(db, username="op2", password="pw-op2-long", roles=["operator"])
    finally:
        await db.close()
    tokens = await login(
        node.http,
        node.url,
        client_id=node.credentials["mobile_client_id"],
        redirect_uri=node.credentials["redirect_uri"],
        username="op2",
        password="pw-op2-long",
    )
    return str(tokens["access_token"])


async def test_an_operator_without_otp_in_amr_gets_403_on_every_admin_route(
    node: RunningNode,
) -> None:
    logged_in = await _operator_without_otp(node)
    minted = mint(node, claims_for(node, node.credentials["operator"]["id"], roles=["operator"]))
    op = await node.token_for("operator")  # one TOTP login: a code works once
    restarts_before = await _restart_counts(node, op)
    for token in (logged_in, minted):
        for method, path in ADMIN_CALLS:
            async with node.http.request(
                method, node.url + path, headers={"Authorization": f"Bearer {token}"}
            ) as resp:
                assert resp.status == 403, path
    assert await _restart_counts(node, op) == restarts_before
    # The operator with TOTP does get in: the refusal is about the factor.
    async with node.http.get(
        f"{node.url}/admin/api/v1/nodes", headers={"Authorization": f"Bearer {op}"}
    ) as resp:
        assert resp.status == 200


async def _restart_counts(node: RunningNode, op: str) -> Any:
    async with node.http.get(
        f"{node.url}/admin/api/v1/actors", headers={"Authorization": f"Bearer {op}"}
    ) as resp:
        return await resp.json()


@pytest.mark.parametrize("target", ["ap-b-entrance", "ap-b-courtyard"])
async def test_a_resident_cannot_open_another_residents_door(
    node: RunningNode, target: str
) -> None:
    token = await node.token_for("anna")
    before = await sim_commands(node)
    async with node.http.post(
        f"{node.url}/api/v1/access-points/{target}/open",
        headers={"Authorization": f"Bearer {token}"},
    ) as resp:
        assert resp.status == 403
    assert await sim_commands(node) == before  # no command reached the vendor


async def test_a_resident_cannot_read_another_residents_commands_or_events(
    node: RunningNode,
) -> None:
    boris = await node.token_for("boris")
    async with node.http.post(
        f"{node.url}/api/v1/access-points/ap-b-entrance/open",
        headers={"Authorization": f"Bearer {boris}"},
    ) as resp:
        assert resp.status == 200
        command_id = (await resp.json())["command_id"]
    anna = await node.token_for("anna")
    auth = {"Authorization": f"Bearer {anna}"}
    async with node.http.get(f"{node.url}/api/v1/commands/{command_id}", headers=auth) as resp:
        assert resp.status == 404
    async with node.http.get(f"{node.url}/api/v1/access-points/ap-b-entrance", headers=auth) as r:
        assert r.status == 404
    async with node.http.get(f"{node.url}/api/v1/events", headers=auth) as resp:
        events = await resp.json()
    assert all(e.get("command_id") != command_id for e in events)


async def test_a_resident_cannot_touch_another_residents_guest_pass(node: RunningNode) -> None:
    boris = {"Authorization": f"Bearer {await node.token_for('boris')}"}
    now = datetime.datetime.now(datetime.UTC)
    async with node.http.post(
        f"{node.url}/api/v1/guest-passes",
        headers=boris,
        json={
            "access_point_ids": ["ap-b-entrance"],
            "valid_from": now.isoformat(),
            "valid_until": (now + datetime.timedelta(hours=1)).isoformat(),
            "max_uses": 1,
        },
    ) as resp:
        if resp.status == 404:
            pytest.fail("guest passes are not served yet")
        assert resp.status == 201, await resp.text()
        pass_id = (await resp.json())["id"]
    anna = {"Authorization": f"Bearer {await node.token_for('anna')}"}
    async with node.http.get(f"{node.url}/api/v1/guest-passes/{pass_id}", headers=anna) as resp:
        assert resp.status in (403, 404)
    async with node.http.delete(f"{node.url}/api/v1/guest-passes/{pass_id}", headers=anna) as r:
        assert r.status in (403, 404)
    async with node.http.get(f"{node.url}/api/v1/guest-passes/{pass_id}", headers=boris) as resp:
        assert resp.status == 200  # still there, unchanged
