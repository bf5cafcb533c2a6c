"""Every access-token check on the node goes through one verifier: what the API refuses
(RFC 7009 revocation, a revoked refresh family, a moved-out resident, a replayed code), the
OIDC userinfo endpoint refuses too."""

from __future__ import annotations

from typing import Any

from tests.e2e.conftest import RunningNode
from tests.support.oauth_client import authorization_code, redeem

SCOPE = "openid profile phone api"


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def _status(node: RunningNode, method: str, path: str, token: str) -> int:
    async with node.http.request(method, f"{node.url}{path}", headers=_bearer(token)) as resp:
        return resp.status


async def _code(node: RunningNode, username: str) -> tuple[str, str]:
    user = node.resident(username)
    return await authorization_code(
        node.http,
        node.url,
        client_id=node.credentials["mobile_client_id"],
        redirect_uri=node.credentials["redirect_uri"],
        username=username,
        password=user["password"],
        scope=SCOPE,
    )


async def _redeem(node: RunningNode, code: str, verifier: str) -> tuple[int, dict[str, Any]]:
    return await redeem(
        node.http,
        node.url,
        code,
        verifier,
        client_id=node.credentials["mobile_client_id"],
        redirect_uri=node.credentials["redirect_uri"],
    )


async def _tokens(node: RunningNode, username: str = "anna") -> dict[str, Any]:
    status, body = await _redeem(node, *await _code(node, username))
    assert status == 200, body
    return body


async def _userinfo(node: RunningNode, token: str) -> tuple[int, dict[str, Any]]:
    async with node.http.get(f"{node.url}/oauth/userinfo", headers=_bearer(token)) as resp:
        return resp.status, dict(await resp.json())


async def _both_accept(node: RunningNode, token: str) -> None:
    assert await _status(node, "GET", "/api/v1/me", token) == 200
    status, info = await _userinfo(node, token)
    assert status == 200, info
    assert info["name"] and info["phone_number"]  # what must not leak once it is revoked


async def _both_refuse(node: RunningNode, token: str) -> None:
    assert await _status(node, "GET", "/api/v1/me", token) == 401
    status, info = await _userinfo(node, token)
    assert (status, info.get("error")) == (401, "invalid_token")
    assert "name" not in info and "phone_number" not in info


async def _revoke(node: RunningNode, token: str, hint: str) -> None:
    async with node.http.post(
        f"{node.url}/oauth/revoke",
        data={
            "token": token,
            "token_type_hint": hint,
            "client_id": node.credentials["mobile_client_id"],
        },
    ) as resp:
        assert resp.status == 200, await resp.text()


async def test_userinfo_refuses_an_access_token_revoked_at_the_revocation_endpoint(
    node: RunningNode,
) -> None:
    access = (await _tokens(node))["access_token"]
    await _both_accept(node, access)  # both verifications cached
    await _revoke(node, access, "access_token")
    await _both_refuse(node, access)


async def test_revoking_a_refresh_token_refuses_the_access_tokens_of_its_family(
    node: RunningNode,
) -> None:
    tokens = await _tokens(node)
    other = await _tokens(node)  # another login of the same resident: another family
    await _both_accept(node, tokens["access_token"])
    await _revoke(node, tokens["refresh_token"], "refresh_token")
    await _both_refuse(node, tokens["access_token"])
    await _both_accept(node, other["access_token"])


async def test_a_replayed_code_revokes_the_access_token_it_gave(node: RunningNode) -> None:
    code, verifier = await _code(node, "anna")
    status, tokens = await _redeem(node, code, verifier)
    assert status == 200, tokens
    await _both_accept(node, tokens["access_token"])
    status, replay = await _redeem(node, code, verifier)
    assert (status, replay["error"]) == (400, "invalid_grant")
    await _both_refuse(node, tokens["access_token"])


async def test_userinfo_refuses_a_moved_out_residents_token(node: RunningNode) -> None:
    anna = node.resident("anna")
    access = (await _tokens(node))["access_token"]
    await _both_accept(node, access)
    operator = await node.token_for(node.credentials["operator"]["username"])
    path = f"/admin/api/v1/residents/{anna['id']}/move-out"
    assert await _status(node, "POST", path, operator) == 200
    await _both_refuse(node, access)
