"""Sites, buildings, partners, access points and residents' rights."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

from propdev.storage.db import Database


@dataclass(frozen=True, slots=True)
class AccessPoint:
    id: str
    name: str
    kind: str
    site_id: str
    building_id: str
    partner_id: str
    device_id: str


_AP_COLUMNS = "id, name, kind, site_id, building_id, partner_id, device_id"


class Directory:
    """Reads and idempotent writes of the estate: what exists and who may open what."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def access_point(self, access_point_id: str) -> AccessPoint | None:
        # By primary key on every open: a lookup, read on the loop without a thread hop.
        row = await self.db.lookup(
            f"SELECT {_AP_COLUMNS} FROM access_points WHERE id = :id", id=access_point_id
        )
        return AccessPoint(**row) if row else None

    async def access_points_of(self, user_id: str) -> list[AccessPoint]:
        rows = await self.db.fetch_all(
            f"SELECT {', '.join('a.' + c.strip() for c in _AP_COLUMNS.split(','))} "
            "FROM access_points a JOIN rights r ON r.access_point_id = a.id "
            "WHERE r.user_id = :u ORDER BY a.id",
            u=user_id,
        )
        return [AccessPoint(**r) for r in rows]

    async def all_access_points(self) -> list[AccessPoint]:
        rows = await self.db.fetch_all(f"SELECT {_AP_COLUMNS} FROM access_points ORDER BY id")
        return [AccessPoint(**r) for r in rows]

    async def may_open(self, user_id: str, access_point_id: str) -> bool:
        row = await self.db.lookup(
            "SELECT 1 AS ok FROM rights WHERE user_id = :u AND access_point_id = :a",
            u=user_id,
            a=access_point_id,
        )
        return row is not None

    async def user(self, user_id: str) -> dict[str, object] | None:
        row = await self.db.fetch_one(
            "SELECT id, username, roles, full_name, phone FROM users WHERE id = :id", id=user_id
        )
        if row is None:
            return None
        return {**row, "roles": [r for r in str(row["roles"]).split(",") if r]}

    # -- idempotent writes (seed-demo, operator tools) -------------------------------------

    async def put_site(self, site_id: str, name: str) -> None:
        await self.db.execute(
            "INSERT INTO sites (id, name) VALUES (:id, :n) "
            "ON CONFLICT (id) DO UPDATE SET name = :n",
            id=site_id,
            n=name,
        )

    async def put_building(self, building_id: str, site_id: str, name: str) -> None:
        await self.db.execute(
            "INSERT INTO buildings (id, site_id, name) VALUES (:id, :s, :n) "
            "ON CONFLICT (id) DO UPDATE SET name = :n, site_id = :s",
            id=building_id,
            s=site_id,
            n=name,
        )

    async def put_partner(
        self,
        partner_id: str,
        name: str,
        adapter: str,
        allowed_cidrs: list[str],
        *,
        base_url: str | None = None,
    ) -> None:
        """Add or update a partner; ``base_url`` (its vendor API, when not the node's
        ``PROPDEV_PARTNER_URL``) is kept when None is given."""
        await self.db.execute(
            "INSERT INTO partners (id, name, adapter, allowed_cidrs, base_url, created_at) "
            "VALUES (:id, :n, :a, :c, :b, :t) ON CONFLICT (id) DO UPDATE "
            "SET name = :n, adapter = :a, allowed_cidrs = :c, "
            "base_url = COALESCE(:b, partners.base_url)",
            id=partner_id,
            n=name,
            a=adapter,
            c=json.dumps(allowed_cidrs),
            b=base_url,
            t=time.time(),
        )

    async def put_access_point(self, ap: AccessPoint) -> None:
        await self.db.execute(
            f"INSERT INTO access_points ({_AP_COLUMNS}) "
            "VALUES (:id, :name, :kind, :site_id, :building_id, :partner_id, :device_id) "
            "ON CONFLICT (id) DO UPDATE SET name = :name, kind = :kind, site_id = :site_id, "
            "building_id = :building_id, partner_id = :partner_id, device_id = :device_id",
            id=ap.id,
            name=ap.name,
            kind=ap.kind,
            site_id=ap.site_id,
            building_id=ap.building_id,
            partner_id=ap.partner_id,
            device_id=ap.device_id,
        )

    async def grant(self, user_id: str, access_point_id: str) -> None:
        await self.db.execute(
            "INSERT INTO rights (user_id, access_point_id) VALUES (:u, :a) "
            "ON CONFLICT (user_id, access_point_id) DO NOTHING",
            u=user_id,
            a=access_point_id,
        )
