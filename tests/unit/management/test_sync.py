from __future__ import annotations

import pytest

from propdev.management import InvalidFieldError, UnknownObjectError
from propdev.management.points import AccessPoints
from propdev.management.sync import PartnerSync
from propdev.partners import DeviceInfo
from propdev.storage import Database
from tests.unit.management.conftest import OPERATOR


async def test_a_preview_reports_added_changed_and_gone_and_changes_nothing(db: Database) -> None:
    devices = [DeviceInfo("d-1", "barrier", "One"), DeviceInfo("d-7", "door", "Seven")]
    report = await PartnerSync(db).run(OPERATOR, "sim", devices, apply=False, building_id=None)
    assert report["added"] == [
        {"access_point_id": "sim-d-7", "device_id": "d-7", "kind": "door", "name": "Seven"}
    ]
    assert [(c["access_point_id"], c["fields"]) for c in report["changed"]] == [("ap-1", ["kind"])]
    assert report["gone"] == [{"access_point_id": "ap-2", "device_id": "d-2"}]
    assert [p["id"] for p in await AccessPoints(db).list()] == ["ap-1", "ap-2"]
    assert await db.fetch_all("SELECT id FROM audit") == []


async def test_apply_creates_takes_the_kind_marks_gone_and_a_returning_device_is_a_change(
    db: Database,
) -> None:
    sync = PartnerSync(db)
    devices = [DeviceInfo("d-1", "barrier", "One"), DeviceInfo("d-7", "door", "Seven")]
    with pytest.raises(InvalidFieldError):
        await sync.run(OPERATOR, "sim", devices, apply=True, building_id=None)
    await sync.run(OPERATOR, "sim", devices, apply=True, building_id="bld-b")
    points = {p["id"]: p for p in await AccessPoints(db).list()}
    assert (points["sim-d-7"]["building_id"], points["sim-d-7"]["name"]) == ("bld-b", "Seven")
    assert (points["ap-1"]["kind"], points["ap-1"]["name"]) == ("barrier", "ap-1")  # name kept
    assert points["ap-2"]["gone_at"] is not None

    back = [*devices, DeviceInfo("d-2", "door", "Two")]
    report = await sync.run(OPERATOR, "sim", back, apply=True, building_id=None)
    assert [(c["access_point_id"], c["fields"]) for c in report["changed"]] == [
        ("ap-2", ["gone_at"])
    ]
    assert (await AccessPoints(db).get("ap-2")).gone_at is None
    actions = [r["action"] for r in await db.fetch_all("SELECT action FROM audit ORDER BY id")]
    assert actions == [
        "access_point.sync_change",
        "access_point.sync_gone",
        "access_point.sync_add",
        "partner.sync",
        "access_point.sync_change",
        "partner.sync",
    ]


async def test_an_unknown_partner_is_not_found(db: Database) -> None:
    with pytest.raises(UnknownObjectError):
        await PartnerSync(db).run(OPERATOR, "nobody", [], apply=False, building_id=None)
