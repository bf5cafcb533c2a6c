"""The resident's events and commands routes, each on an application holding only its store
(a real one, on SQLite)."""

from __future__ import annotations

from propdev.http.keys import COMMANDS, EVENTS
from propdev.http.routes import resident
from propdev.storage import Database, UnitConnection, events
from propdev.storage.commands import Commands, add_steps, sync_put_command
from propdev.storage.events import EventStore
from tests.support.routes import ClientFactory, caller, route_app

ANNA = caller("u-anna", "resident")


async def test_my_events_are_mine_only_oldest_first_after_the_cursor(
    db: Database, aiohttp_client: ClientFactory
) -> None:
    async with db.transaction() as conn:
        for user, command in [("u-anna", "c1"), ("u-boris", "c2"), ("u-anna", "c3")]:
            await events.append(
                conn,
                user_id=user,
                type="access.granted",
                access_point_id="ap-1",
                command_id=command,
                occurred_at=1.0,
            )
    app = route_app(resident.routes, calling=ANNA)
    app[EVENTS] = EventStore(db)
    client = await aiohttp_client(app)

    resp = await client.get("/api/v1/events")
    assert resp.status == 200
    mine = await resp.json()
    assert [e["command_id"] for e in mine] == ["c1", "c3"]

    resp = await client.get("/api/v1/events", params={"after": str(mine[0]["id"])})
    assert [e["command_id"] for e in await resp.json()] == ["c3"]


async def test_a_limit_out_of_range_is_a_400_problem(
    db: Database, aiohttp_client: ClientFactory
) -> None:
    app = route_app(resident.routes, calling=ANNA)
    app[EVENTS] = EventStore(db)
    client = await aiohttp_client(app)

    resp = await client.get("/api/v1/events", params={"limit": "0"})

    assert resp.status == 400
    assert resp.content_type == "application/problem+json"


async def test_my_command_shows_its_steps_and_its_passage_and_anothers_is_a_404(
    db: Database, aiohttp_client: ClientFactory
) -> None:
    def write(conn: UnitConnection) -> None:
        for command_id, user in (("c-anna", "u-anna"), ("c-boris", "u-boris")):
            sync_put_command(
                conn,
                command_id=command_id,
                access_point_id="ap-1",
                user_id=user,
                status="confirmed",
                at=10.0,
                vendor_command_id="v-1",
            )

    await db.unit(write)
    async with db.transaction() as conn:
        await add_steps(
            conn, "c-anna", [("requested", 10.0, {}), ("confirmed", 11.0, {}), ("entry", 12.0, {})]
        )
    app = route_app(resident.routes, calling=ANNA)
    app[COMMANDS] = Commands(db)
    client = await aiohttp_client(app)

    resp = await client.get("/api/v1/commands/c-anna")
    assert resp.status == 200
    body = await resp.json()
    assert (body["id"], body["status"], body["vendor_command_id"]) == ("c-anna", "confirmed", "v-1")
    assert [s["step"] for s in body["steps"]] == ["requested", "confirmed", "entry"]
    assert body["passage"] == {"type": "entry", "at": 12.0}

    resp = await client.get("/api/v1/commands/c-boris")
    assert resp.status == 404
    assert resp.content_type == "application/problem+json"
