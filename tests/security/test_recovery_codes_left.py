"""Operators see how many recovery codes they have left (never the codes), on a running node."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from propdev.security import RECOVERY_CODES_LOW, open_vault
from propdev.security.recovery import use_recovery_code
from propdev.storage import Database
from tests.e2e.conftest import RunningNode

PATH = "/admin/api/v1/me/recovery-codes"


async def _left(node: RunningNode, token: str) -> tuple[int, Any]:
    async with node.http.get(node.url + PATH, headers={"Authorization": f"Bearer {token}"}) as resp:
        return resp.status, await resp.json()


async def test_an_operator_sees_the_codes_left_and_low_when_few_remain(node: RunningNode) -> None:
    operator = node.credentials["operator"]
    token = await node.token_for("operator")
    status, body = await _left(node, token)
    assert status == 200
    assert body == {"remaining": 10, "issued": 10, "low": False, "low_at": RECOVERY_CODES_LOW}
    assert not any(code in str(body) for code in operator["recovery_codes"])

    db = Database(node.settings.database_url)
    await open_vault(node.settings, db)  # the node's index key: the codes' hashes
    try:  # spend codes as logins would, until few are left
        for code in operator["recovery_codes"][: 10 - RECOVERY_CODES_LOW - 1]:
            assert await _spend(db, operator["id"], code)
        assert (await _left(node, token))[1]["low"] is False
        assert await _spend(db, operator["id"], operator["recovery_codes"][-1])
    finally:
        await db.close()
    status, body = await _left(node, token)
    assert (status, body["remaining"], body["issued"]) == (200, RECOVERY_CODES_LOW, 10)
    assert body["low"] is True


async def _spend(db: Database, user_id: str, code: str) -> bool:
    return await asyncio.to_thread(use_recovery_code, db, user_id, code, now=time.time())


async def test_a_resident_cannot_ask(node: RunningNode) -> None:
    status, _ = await _left(node, await node.token_for("anna"))
    assert status == 403
