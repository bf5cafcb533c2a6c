"""Rate limits on a real node (``PROPDEV_RATE_LIMIT=1``, where every other test turns them off):
a resident opening again too soon, the token endpoint hammered from one address."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import RunningNode, node_settings, running_node
from tests.security.helpers import claims_for, mint

# One request per second per client (bursts of 2); opens one per 5 s per resident (bursts of
# 1); token requests one per 2 s per address (bursts of 1). Tokens are minted, not obtained by
# logging in, so that the login's own requests spend none of these budgets.
RATE = "1"


@pytest.fixture
async def limited(tmp_path: Path) -> AsyncIterator[RunningNode]:
    async with running_node(node_settings(tmp_path, PROPDEV_RATE_LIMIT=RATE)) as running:
        yield running


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def _open(node: RunningNode, token: str, door: str) -> tuple[int, Any, dict[str, str]]:
    async with node.http.post(
        f"{node.url}/api/v1/access-points/{door}/open", headers=bearer(token)
    ) as resp:
        return resp.status, await resp.json(content_type=None), dict(resp.headers)


async def test_a_resident_opening_again_at_once_gets_a_429_while_another_resident_opens(
    limited: RunningNode,
) -> None:
    anna, boris = limited.resident("anna"), limited.resident("boris")
    anna_token = mint(limited, claims_for(limited, str(anna["id"])))
    boris_token = mint(limited, claims_for(limited, str(boris["id"])))
    door = anna["access_point_ids"][0]

    status, body, _ = await _open(limited, anna_token, door)
    assert status == 200, body
    status, problem, headers = await _open(limited, anna_token, door)
    assert status == 429, problem
    assert headers["Content-Type"].startswith("application/problem+json")
    assert problem["status"] == 429 and problem["type"].endswith("/rate-limited")
    assert headers["RateLimit-Policy"] == '"open";q=1;w=1'
    assert int(headers["Retry-After"]) >= 1

    # The budget is anna's (her token's subject), not the address's: boris, from the same
    # address, opens his door.
    status, body, _ = await _open(limited, boris_token, boris["access_point_ids"][0])
    assert status == 200, body


async def test_the_token_endpoint_hammered_from_one_address_gets_a_429(
    limited: RunningNode,
) -> None:
    form = {"grant_type": "authorization_code", "code": "c" * 43, "client_id": "nobody"}
    async with limited.http.post(f"{limited.url}/oauth/token", data=form) as resp:
        assert resp.status != 429, await resp.text()  # refused for its content
    async with limited.http.post(f"{limited.url}/oauth/token", data=form) as resp:
        assert resp.status == 429, await resp.text()
        assert resp.headers["RateLimit-Policy"] == '"auth";q=1;w=1'
        assert int(resp.headers["Retry-After"]) >= 1
    for _ in range(5):  # health checks are never limited
        async with limited.http.get(f"{limited.url}/healthz") as resp:
            assert resp.status == 200
