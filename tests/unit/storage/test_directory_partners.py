"""Partners in the directory: a partner's vendor address is stored, and kept when it is
registered again without one (seeding again must not forget where a vendor is)."""

from __future__ import annotations

from propdev.storage import Database
from propdev.storage.directory import Directory


async def base_url(db: Database, partner_id: str) -> object:
    row = await db.fetch_one("SELECT base_url FROM partners WHERE id = :id", id=partner_id)
    assert row is not None
    return row["base_url"]


async def test_a_partners_base_url_is_stored_and_kept_when_registered_again_without_one(
    db: Database,
) -> None:
    directory = Directory(db)

    await directory.put_partner("vendor-b", "Vendor B", "vendor", [], base_url="https://b:9443")
    await directory.put_partner("vendor-b", "Vendor B", "vendor", ["127.0.0.0/8"])
    await directory.put_partner("plain", "Plain", "vendor", [])

    assert await base_url(db, "vendor-b") == "https://b:9443"
    assert await base_url(db, "plain") is None
    await directory.put_partner("vendor-b", "Vendor B", "vendor", [], base_url="https://c:9443")
    assert await base_url(db, "vendor-b") == "https://c:9443"
