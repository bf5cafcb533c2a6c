"""bench/estate.py: the doors a benchmark adds are in the store, granted to every resident, and
the credentials the load is built from name them (so the load is spread over them)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from bench.bench_open import open_targets
from bench.common import node_env
from bench.estate import add_doors, door_ids, with_doors
from propdev.config import Settings
from propdev.devkit.demo import seed_demo
from propdev.storage import Database


def test_added_doors_are_stored_granted_and_targeted(tmp_path: Path) -> None:
    env = node_env(tmp_path, 8443)
    credentials = asyncio.run(seed_demo(Settings.from_env(env)))
    doors = door_ids(7)
    residents = [str(r["id"]) for r in credentials["residents"]]
    asyncio.run(add_doors(env, doors, residents))

    async def stored() -> tuple[set[str], int]:
        db = Database(Settings.from_env(env).database_url)
        try:
            points = await db.fetch_all("SELECT id, device_id FROM access_points")
            rights = await db.fetch_all(
                "SELECT user_id FROM rights WHERE access_point_id LIKE 'ap-bench-%'"
            )
            by_id = {str(p["id"]): str(p["device_id"]) for p in points}
            assert all(by_id[ap] == device for ap, device in doors.items())
            return set(by_id), len(rights)
        finally:
            await db.close()

    ids, rights = asyncio.run(stored())
    assert set(doors) <= ids and rights == 7 * len(residents)

    widened = with_doors(credentials, doors)
    assert len(widened["access_points"]) == len(credentials["access_points"]) + 7
    tokens = {str(r["username"]): f"token-{r['username']}" for r in credentials["residents"]}
    targets = open_targets(widened, tokens)
    opened = {t.path.split("/")[4] for t in targets}
    assert set(doors) <= opened  # one target per door, the new ones included
    assert len(credentials["residents"][0]["access_point_ids"]) < len(
        widened["residents"][0]["access_point_ids"]
    )
