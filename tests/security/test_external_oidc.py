"""An external OIDC provider as a second trusted issuer, against a running node."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from propdev.security.external import subject_of
from tests.e2e.conftest import RunningNode, node_settings, running_node
from tests.support.fake_idp import FakeIdP, serve_idp


@pytest.fixture
async def idp(tmp_path: Path) -> AsyncIterator[FakeIdP]:
    async with serve_idp(tmp_path / "idp-pki") as running:
        yield running


@pytest.fixture
async def node(tmp_path: Path, idp: FakeIdP) -> AsyncIterator[RunningNode]:
    settings = node_settings(
        tmp_path / "node",
        PROPDEV_EXTERNAL_OIDC_ISSUER=idp.issuer,
        PROPDEV_EXTERNAL_OIDC_AUDIENCE="propdev-api",
        PROPDEV_EXTERNAL_OIDC_CA_FILE=str(idp.ca_file),
        PROPDEV_EXTERNAL_OIDC_ROLES_CLAIM="realm_access.roles",
    )
    async with running_node(settings) as running:
        yield running


async def _get(node: RunningNode, path: str, token: str) -> tuple[int, dict[str, object]]:
    async with node.http.get(node.url + path, headers={"Authorization": f"Bearer {token}"}) as r:
        body = await r.json(content_type=None) if r.content_length != 0 else {}
        return r.status, body if isinstance(body, dict) else {"list": body}


async def test_a_provider_token_reaches_authenticated_routes_as_a_prefixed_subject(
    node: RunningNode, idp: FakeIdP
) -> None:
    status, me = await _get(node, "/api/v1/me", idp.token("propdev-api", sub="kc-42"))
    assert status == 200
    assert me["id"] == subject_of(idp.issuer, "kc-42") and me["username"] == "kc-42"
    assert me["roles"] == [] and me["issuer"] == idp.issuer
    # No roles claim value: only AUTHENTICATED routes; resident and admin routes say 403.
    status, _ = await _get(node, "/api/v1/access-points", idp.token("propdev-api"))
    assert status == 403
    status, _ = await _get(node, "/admin/api/v1/nodes", idp.token("propdev-api"))
    assert status == 403


async def test_a_provider_operator_needs_a_second_factor_for_the_admin_api(
    node: RunningNode, idp: FakeIdP
) -> None:
    roles = {"roles": ["operator"]}
    without = idp.token("propdev-api", realm_access=roles, amr=["pwd"])
    assert (await _get(node, "/admin/api/v1/nodes", without))[0] == 403
    with_otp = idp.token("propdev-api", realm_access=roles, amr=["pwd", "otp"])
    assert (await _get(node, "/admin/api/v1/nodes", with_otp))[0] == 200


async def test_forged_provider_tokens_get_401(node: RunningNode, idp: FakeIdP) -> None:
    good = idp.token("propdev-api")
    head, body, _ = good.split(".")
    header = json.loads(base64.urlsafe_b64decode(head + "=="))
    none_head = base64.urlsafe_b64encode(json.dumps({**header, "alg": "none"}).encode())
    forged = {
        "alg none": f"{none_head.rstrip(b'=').decode()}.{body}.",
        "other audience": idp.token("https://other.example"),
        "expired": idp.token("propdev-api", exp=1_700_000_000, iat=1_699_999_000),
        "unknown kid": idp.token("propdev-api", kid="nope"),
        "tampered": f"{head}.{body[:-4]}AAAA.{good.split('.')[2]}",
    }
    for name, token in forged.items():
        status, _ = await _get(node, "/api/v1/me", token)
        assert status == 401, name


async def test_local_tokens_still_work_beside_the_provider(node: RunningNode) -> None:
    token = await node.token_for("anna")
    status, me = await _get(node, "/api/v1/me", token)
    assert status == 200 and not str(me["id"]).startswith("ext:")
