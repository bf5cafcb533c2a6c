"""A device actor saves its state on stop only under the shard's current epoch: a node that
lost the shard (paused past its lease, a newer owner took it) must not write."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from propdev.access import AccessRules, GuestPasses, Opening, OpenRequest, PassCodes, Vehicles, Via
from propdev.actors import Address
from propdev.actors.device import DeviceActor, DeviceDeps, DeviceState
from propdev.devkit import VendorSimulator
from propdev.partners import InProcessAdapter, PartnerGateway
from propdev.registry import Fence, FencedError, InProcessBus, NotOwnerError, ShardGuard, shard_of
from propdev.storage import Database, migrate
from propdev.storage.directory import AccessPoint, Directory
from tests.support.postgres import fresh_database

DOOR = "ap-fenced"


class Leases:
    """The part of a placement a ``ShardGuard`` reads: the epoch of each lease this node holds."""

    shards = 64

    def __init__(self) -> None:
        self.held: dict[int, int] = {}

    def held_epoch(self, shard: int) -> int:
        if shard not in self.held:
            raise NotOwnerError(f"shard {shard} is not held")
        return self.held[shard]

    epoch = held_epoch  # the lease is taken as valid: the store's epoch decides


@pytest.fixture(params=["sqlite", "postgresql"])
async def db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    sqlite = contextlib.nullcontext(f"sqlite:///{tmp_path}/test.db")
    with fresh_database() if request.param == "postgresql" else sqlite as url:
        database = Database(url)
        try:
            await migrate(database)
            yield database
        finally:
            await database.close()


def _actor(db: Database, leases: Leases, bus: InProcessBus, opens: int = 0) -> DeviceActor:
    guard = ShardGuard(leases, Fence(db))  # type: ignore[arg-type]  # the lease part only
    actor = DeviceActor(DeviceDeps(db, Directory(db), {}, bus, guard=guard))
    actor.address = Address("device", DOOR)
    actor.state = DeviceState(online=True, opens=opens)
    return actor


async def _stopped_with(db: Database, leases: Leases, opens: int) -> None:
    """A device actor of ``DOOR`` with ``opens`` in its state, stopped (``on_stop``)."""
    bus = InProcessBus()
    await _actor(db, leases, bus, opens).on_stop()
    await bus.close()


async def _saved_opens(db: Database) -> int | None:
    row = await db.fetch_one("SELECT state FROM device_state WHERE access_point_id = :id", id=DOOR)
    return None if row is None else int(json.loads(row["state"])["opens"])


async def test_a_stale_epochs_save_is_refused_and_the_current_ones_applied(db: Database) -> None:
    shard = shard_of(DOOR)
    fence = Fence(db)
    old, new = Leases(), Leases()
    old.held[shard] = (await fence.advance([shard], "old"))[shard]
    await _stopped_with(db, old, opens=1)  # the holder saves
    assert await _saved_opens(db) == 1

    new.held[shard] = (await fence.advance([shard], "new"))[shard]  # a newer owner took it
    await _stopped_with(db, old, opens=2)  # the old owner, still believing it holds the lease
    assert await _saved_opens(db) == 1

    await _stopped_with(db, new, opens=3)
    assert await _saved_opens(db) == 3


async def test_a_node_that_no_longer_holds_the_shard_does_not_save(db: Database) -> None:
    shard = shard_of(DOOR)
    leases = Leases()
    leases.held[shard] = (await Fence(db).advance([shard], "me"))[shard]
    await _stopped_with(db, leases, opens=1)
    del leases.held[shard]  # released, or found taken by another node
    await _stopped_with(db, leases, opens=5)
    assert await _saved_opens(db) == 1


async def test_a_stale_owners_record_of_a_failed_command_is_refused(db: Database) -> None:
    """A node that woke after its shard moved must not mark a command failed (the new owner
    may have confirmed it meanwhile): the opening pipeline's record is fenced."""
    shard = shard_of(DOOR)
    fence = Fence(db)
    old, new = Leases(), Leases()
    old.held[shard] = (await fence.advance([shard], "old"))[shard]
    new.held[shard] = (await fence.advance([shard], "new"))[shard]
    bus = InProcessBus()
    sim = VendorSimulator()
    sim.set_faults("error")  # the vendor fails: a failed command to record
    gateway = PartnerGateway(
        InProcessAdapter(sim), timeout=5.0, breaker_failures=50, breaker_reset=30.0
    )
    rules = AccessRules(db)
    opening = Opening(db, bus, rules, GuestPasses(db, rules, PassCodes(b"k" * 32)), Vehicles(db))
    manual = OpenRequest(Via.MANUAL, subject="op-1", command_id="cmd-1")

    def actor(leases: Leases) -> DeviceActor:
        found = _actor(db, leases, bus)
        found.deps.opening = opening
        found.deps.gateways = {"simulator": gateway}
        found.access_point = AccessPoint(DOOR, "Door", "door", "s", "b", "simulator", "sim-door-1")
        return found

    with pytest.raises(FencedError):
        await actor(old).open(manual)
    assert await db.fetch_one("SELECT id FROM commands WHERE id = 'cmd-1'") is None
    outcome = await actor(new).open(manual)
    assert outcome.reason == "partner_unavailable"
    row = await db.fetch_one("SELECT status FROM commands WHERE id = 'cmd-1'")
    assert row is not None and row["status"] == "failed"
    await sim.close()
    await bus.close()
