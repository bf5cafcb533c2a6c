from __future__ import annotations

import pytest

from propdev.management import InvalidFieldError
from propdev.management.imports import CsvImport
from propdev.management.points import AccessPoints
from propdev.storage import Database
from tests.unit.management.conftest import OPERATOR

HEADER = "access_point_id,name,kind,building_id,partner,device_id\n"


async def test_a_dry_run_reports_what_the_real_run_does_and_writes_nothing(db: Database) -> None:
    text = HEADER + (
        "ap-3,Three,door,bld-b,sim,d-3\n"
        "ap-1,Renamed,door,bld-a,sim,d-1\n"
        "ap-2,ap-2,door,bld-a,sim,d-2\n"
        "ap-4,Four,door,bld-b,sim,d-3\n"  # the device line 2 just took
        "ap-5,Five,lift,bld-b,sim,d-5\n"
        "ap-3,Three again,door,bld-b,sim,d-3\n"
    )
    preview = await CsvImport(db).run(OPERATOR, text, dry_run=True)
    assert [p["id"] for p in await AccessPoints(db).list()] == ["ap-1", "ap-2"]
    real = await CsvImport(db).run(OPERATOR, text, dry_run=False)
    assert preview.lines == real.lines
    assert [(line["line"], line["outcome"]) for line in real.lines] == [
        (2, "added"),
        (3, "changed"),
        (4, "unchanged"),
        (5, "rejected"),
        (6, "rejected"),
        (7, "rejected"),
    ]
    reasons = [line.get("reason", "") for line in real.lines]
    assert reasons[3].startswith("conflict:") and "ap-3" in reasons[3]
    assert reasons[4].startswith("kind:")
    assert "earlier line" in reasons[5]
    points = {p["id"]: p for p in await AccessPoints(db).list()}
    assert (points["ap-3"]["site_id"], points["ap-1"]["name"]) == ("site-1", "Renamed")
    entries = await db.fetch_all("SELECT action, access_point_id FROM audit ORDER BY id")
    assert [(e["action"], e["access_point_id"]) for e in entries] == [
        ("access_point.import", "ap-3"),
        ("access_point.import", "ap-1"),
        ("access_points.import", None),
    ]


async def test_columns_may_come_in_any_order_and_blank_lines_are_skipped(db: Database) -> None:
    text = (
        "device_id,partner,building_id,kind,name,access_point_id\n"
        "\n"
        "d-9,sim,bld-b,barrier,Gate,ap-9\n"
    )
    report = await CsvImport(db).run(OPERATOR, text, dry_run=False)
    assert report.to_json()["summary"] == {"added": 1, "changed": 0, "unchanged": 0, "rejected": 0}
    assert (await AccessPoints(db).get("ap-9")).spec.kind == "barrier"


@pytest.mark.parametrize(
    "text",
    ["", "id,name\n", HEADER.replace("kind", "type"), HEADER.strip() + ",kind\n"],
)
async def test_a_file_without_the_header_is_refused_as_a_whole(db: Database, text: str) -> None:
    with pytest.raises(InvalidFieldError) as raised:
        await CsvImport(db).run(OPERATOR, text, dry_run=False)
    assert raised.value.field in ("header", "body")
