"""The door-open flow with PostgreSQL as the store (the cluster's store)."""

from __future__ import annotations

import asyncio

from propdev.registry import shard_of
from propdev.storage.audit import GENESIS
from tests.e2e.conftest import RunningNode
from tests.e2e.test_open_door import bearer, sim_commands


async def test_opens_on_postgresql_are_audited_once_each_and_idempotent(
    pg_node: RunningNode,
) -> None:
    node = pg_node
    token = await node.token_for("anna")
    doors = node.resident("anna")["access_point_ids"]

    async def open_door(door: str, key: str) -> dict[str, object]:
        async with node.http.post(
            f"{node.url}/api/v1/access-points/{door}/open",
            headers={**bearer(token), "Idempotency-Key": key},
        ) as resp:
            assert resp.status == 200, await resp.text()
            return dict(await resp.json())

    # Concurrent opens of several doors, one key sent twice at once.
    answers = await asyncio.gather(
        *(open_door(door, f"k-{door}") for door in doors), open_door(doors[0], f"k-{doors[0]}")
    )
    assert answers[0] == answers[-1]
    assert len(await sim_commands(node)) == len(doors)

    operator = bearer(await node.token_for("operator"))
    async with node.http.get(f"{node.url}/admin/api/v1/audit", headers=operator) as resp:
        entries = (await resp.json())["entries"]
    opens = [e for e in entries if e["action"] == "open"]  # the sign-ins are entries too
    assert sorted(e["command_id"] for e in opens) == sorted(
        str(a["command_id"]) for a in answers[:-1]
    )
    # One chain per shard: each entry links within its chain (a door's entries by the door's
    # shard, a sign-in by its subject's: the same key as ``chain_of``, i.e. ``shard_of``).
    chains: dict[int, list[dict[str, str]]] = {}
    for e in entries:
        key = e["access_point_id"] or e["subject"] or e["actor"]
        chains.setdefault(shard_of(key), []).append(e)
    for chain in chains.values():
        assert chain[0]["prev_hash"] == GENESIS
        assert [e["prev_hash"] for e in chain[1:]] == [e["hash"] for e in chain[:-1]]
