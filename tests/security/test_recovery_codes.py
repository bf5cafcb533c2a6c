"""Operators' recovery codes against the running node: the real login form, the admin API."""

from __future__ import annotations

import json
from typing import Any

import jwt
import pytest

from propdev.admin_cli import recovery_codes_command
from tests.e2e.conftest import RunningNode
from tests.support.oauth_client import login


async def _login(node: RunningNode, otp: str) -> dict[str, Any]:
    op = node.credentials["operator"]
    return await login(
        node.http,
        node.url,
        client_id=node.credentials["mobile_client_id"],
        redirect_uri=node.credentials["redirect_uri"],
        username=op["username"],
        password=op["password"],
        otp=otp,
    )


async def _admin_status(node: RunningNode, token: str) -> int:
    async with node.http.get(
        f"{node.url}/admin/api/v1/nodes", headers={"Authorization": f"Bearer {token}"}
    ) as resp:
        return resp.status


async def test_a_recovery_code_opens_the_admin_api_once_with_mfa_in_amr(
    node: RunningNode,
) -> None:
    codes = node.credentials["operator"]["recovery_codes"]
    assert len(codes) == 10
    tokens = await _login(node, codes[0])
    claims = jwt.decode(tokens["access_token"], options={"verify_signature": False})
    assert claims["amr"] == ["pwd", "mfa"]
    assert await _admin_status(node, tokens["access_token"]) == 200
    with pytest.raises(AssertionError, match="401"):
        await _login(node, codes[0])  # the form answers 401: used already


async def test_new_codes_from_the_cli_replace_the_earlier_set(
    node: RunningNode, capsys: pytest.CaptureFixture[str], logs_captured: list[dict[str, Any]]
) -> None:
    old = node.credentials["operator"]["recovery_codes"]
    assert await recovery_codes_command(node.settings, "operator") == 0
    new = json.loads(capsys.readouterr().out)["recovery_codes"]
    with pytest.raises(AssertionError, match="401"):
        await _login(node, old[1])
    tokens = await _login(node, new[1])
    assert await _admin_status(node, tokens["access_token"]) == 200
