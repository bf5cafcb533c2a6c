from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from propdev.config import Settings
from propdev.devkit import seed_demo
from propdev.security import verify_password
from propdev.storage import Database


def settings(tmp_path: Path) -> Settings:
    return Settings.from_env({"PROPDEV_DATA_DIR": str(tmp_path)})


async def count(db: Database, table: str) -> int:
    row = await db.fetch_one(f"SELECT COUNT(*) AS n FROM {table}")
    assert row is not None
    return int(row["n"])


async def test_seeding_twice_changes_nothing_and_keeps_the_credentials(tmp_path: Path) -> None:
    s = settings(tmp_path)
    first = await seed_demo(s)
    second = await seed_demo(s)
    assert first == second
    db = Database(s.database_url)
    try:
        assert await count(db, "users") == 3 + 4  # residents, staff
        assert await count(db, "staff") == 4
        assert await count(db, "access_points") == 5
        assert await count(db, "rights") == sum(
            len(r["access_point_ids"]) for r in first["residents"]
        )
    finally:
        await db.close()
    assert oct(s.credentials_path.stat().st_mode & 0o777) == "0o600"


async def test_the_contract_shape_of_demo_credentials(tmp_path: Path) -> None:
    s = settings(tmp_path)
    await seed_demo(s)
    creds = json.loads(s.credentials_path.read_text())
    assert {
        "ca_cert",
        "base_url",
        "mobile_client_id",
        "redirect_uri",
        "residents",
        "operator",
        "access_points",
        "partner_sim_url",
    } <= set(creds)
    assert Path(creds["ca_cert"]).exists()
    assert len(creds["residents"]) == 3 and creds["operator"]["totp_secret"]
    kinds = {a["kind"] for a in creds["access_points"]}
    assert kinds == {"door", "barrier"} and all(
        a["partner"] == "simulator" for a in creds["access_points"]
    )
    every = {a["id"] for a in creds["access_points"]}
    assert any(set(r["access_point_ids"]) < every for r in creds["residents"])
    passwords = [r["password"] for r in creds["residents"]] + [creds["operator"]["password"]]
    assert len(set(passwords)) == 4 and all(len(p) >= 12 for p in passwords)
    assert_the_portfolio(creds)
    # the resident web app: its client, registered for the page the README sends people to
    assert creds["web_app_client_id"] == "resident-web"
    assert creds["web_app_url"] == "https://127.0.0.1:8443/app/"
    db = Database(s.database_url)
    try:
        row = await db.fetch_one(
            "SELECT redirect_uris FROM oauth_clients WHERE client_id = 'resident-web'"
        )
    finally:
        await db.close()
    assert row is not None and json.loads(row["redirect_uris"]) == [creds["web_app_url"]]


async def test_a_lost_credentials_file_is_rewritten_truthfully(tmp_path: Path) -> None:
    s = settings(tmp_path)
    await seed_demo(s)
    s.credentials_path.unlink()
    fresh = await seed_demo(s)
    db = Database(s.database_url)
    try:
        for resident in fresh["residents"]:
            row = await db.fetch_one(
                "SELECT password_hash FROM users WHERE username = :u", u=resident["username"]
            )
            assert row is not None
            assert verify_password(row["password_hash"], resident["password"])
    finally:
        await db.close()


async def test_passwords_differ_between_data_dirs(tmp_path: Path) -> None:
    a = await seed_demo(settings(tmp_path / "a"))
    b = await seed_demo(settings(tmp_path / "b"))
    assert a["residents"][0]["password"] != b["residents"][0]["password"]


def assert_the_portfolio(creds: dict[str, Any]) -> None:
    """API.md, "Portfolio": two sites with doors, an organisation-wide admin who is the v1
    ``operator``, an operator scoped to exactly one site, a household role per resident."""
    sites = {s["id"] for s in creds["sites"]}
    assert len(sites) >= 2
    for site in sites:
        assert any(a["site_id"] == site and a["kind"] == "door" for a in creds["access_points"])
    staff = {o["username"]: o for o in creds["operators"]}
    admin = staff[creds["operator"]["username"]]
    assert (admin["roles"], admin["site_ids"], admin["id"]) == (
        ["admin"],
        None,
        creds["operator"]["id"],
    )
    scoped = [o for o in staff.values() if o["roles"] == ["operator"] and o["site_ids"]]
    assert {len(o["site_ids"]) for o in scoped} == {1}
    assert {o["site_ids"][0] for o in scoped} == sites
    assert all(o["password"] and o["totp_secret"] for o in staff.values())
    assert "auditor" in {r for o in staff.values() for r in o["roles"]}
    roles = {r["username"]: r["household_role"] for r in creds["residents"]}
    assert set(roles.values()) == {"owner", "member"}
