"""Sites, buildings and apartments: listing, creating, renaming and deleting them.

A delete is refused (``ConflictError``) while something still lives inside: buildings in a
site, apartments or access points in a building, residents (not moved out) in an apartment.
"""

from __future__ import annotations

import time
from typing import Any

import sqlalchemy as sa

import propdev.management.fields as fields
from propdev.management.changes import details, record
from propdev.management.errors import ConflictError, InvalidFieldError, UnknownObjectError
from propdev.storage import Database, run


class Estate:
    def __init__(self, db: Database) -> None:
        self.db = db

    # -- sites -------------------------------------------------------------------------------

    async def sites(self) -> list[dict[str, Any]]:
        return [
            dict(r)
            for r in await self.db.fetch_all("SELECT id, name, timezone FROM sites ORDER BY id")
        ]

    async def site(self, site_id: str) -> dict[str, Any]:
        row = await self.db.fetch_one(
            "SELECT id, name, timezone FROM sites WHERE id = :id", id=site_id
        )
        if row is None:
            raise UnknownObjectError("site", site_id)
        return dict(row)

    async def create_site(self, actor: str, body: object) -> dict[str, Any]:
        data = fields.body_object(body)
        fields.only(data, ("id", "name", "timezone"))
        site = {
            "id": fields.ident(data.get("id"), "id"),
            "name": fields.text(data.get("name"), "name"),
            "timezone": fields.timezone(data.get("timezone", "Europe/Moscow")),
        }
        async with self.db.transaction() as conn:
            if await run(conn, "SELECT 1 AS x FROM sites WHERE id = :id", id=site["id"]):
                raise ConflictError(f"site {site['id']!r} exists", "id")
            await run(
                conn,
                "INSERT INTO sites (id, name, timezone) VALUES (:id, :name, :timezone)",
                **site,
            )
            await record(
                conn,
                self.db.dialect,
                actor=actor,
                action="site.create",
                reason=details(site_id=site["id"], timezone=site["timezone"]),
            )
        return site

    async def update_site(self, actor: str, site_id: str, body: object) -> dict[str, Any]:
        data = fields.body_object(body)
        fields.only(data, ("name", "timezone"))
        changes: dict[str, str] = {}
        if "name" in data:
            changes["name"] = fields.text(data["name"], "name")
        if "timezone" in data:
            changes["timezone"] = fields.timezone(data["timezone"])
        await self.site(site_id)
        if changes:
            async with self.db.transaction() as conn:
                sets = ", ".join(f"{k} = :{k}" for k in changes)
                await run(conn, f"UPDATE sites SET {sets} WHERE id = :id", id=site_id, **changes)
                await record(
                    conn,
                    self.db.dialect,
                    actor=actor,
                    action="site.update",
                    reason=details(site_id=site_id, fields=",".join(sorted(changes))),
                )
        return await self.site(site_id)

    async def delete_site(self, actor: str, site_id: str) -> None:
        await self.site(site_id)
        async with self.db.transaction() as conn:
            inside = await run(
                conn, "SELECT COUNT(*) AS n FROM buildings WHERE site_id = :id", id=site_id
            )
            if int(inside[0]["n"]):
                raise ConflictError(f"site {site_id!r} still has buildings")
            await run(conn, "DELETE FROM sites WHERE id = :id", id=site_id)
            await record(
                conn,
                self.db.dialect,
                actor=actor,
                action="site.delete",
                reason=details(site_id=site_id),
            )

    # -- buildings ---------------------------------------------------------------------------

    async def buildings(self, *, site_id: str | None = None) -> list[dict[str, Any]]:
        where = " WHERE site_id = :s" if site_id else ""
        return [
            dict(r)
            for r in await self.db.fetch_all(
                f"SELECT id, site_id, name FROM buildings{where} ORDER BY id", s=site_id
            )
        ]

    async def building(self, building_id: str) -> dict[str, Any]:
        row = await self.db.fetch_one(
            "SELECT id, site_id, name FROM buildings WHERE id = :id", id=building_id
        )
        if row is None:
            raise UnknownObjectError("building", building_id)
        return dict(row)

    async def create_building(self, actor: str, body: object) -> dict[str, Any]:
        data = fields.body_object(body)
        fields.only(data, ("id", "site_id", "name"))
        building = {
            "id": fields.ident(data.get("id"), "id"),
            "site_id": fields.ident(data.get("site_id"), "site_id"),
            "name": fields.text(data.get("name"), "name"),
        }
        async with self.db.transaction() as conn:
            if not await run(
                conn, "SELECT 1 AS x FROM sites WHERE id = :id", id=building["site_id"]
            ):
                raise InvalidFieldError("site_id", "no such site")
            if await run(conn, "SELECT 1 AS x FROM buildings WHERE id = :id", id=building["id"]):
                raise ConflictError(f"building {building['id']!r} exists", "id")
            await run(
                conn,
                "INSERT INTO buildings (id, site_id, name) VALUES (:id, :site_id, :name)",
                **building,
            )
            await record(
                conn,
                self.db.dialect,
                actor=actor,
                action="building.create",
                reason=details(building_id=building["id"], site_id=building["site_id"]),
            )
        return building

    async def update_building(self, actor: str, building_id: str, body: object) -> dict[str, Any]:
        data = fields.body_object(body)
        fields.only(data, ("name",))
        await self.building(building_id)
        if "name" in data:
            name = fields.text(data["name"], "name")
            async with self.db.transaction() as conn:
                await run(
                    conn, "UPDATE buildings SET name = :n WHERE id = :id", n=name, id=building_id
                )
                await record(
                    conn,
                    self.db.dialect,
                    actor=actor,
                    action="building.update",
                    reason=details(building_id=building_id, fields="name"),
                )
        return await self.building(building_id)

    async def delete_building(self, actor: str, building_id: str) -> None:
        await self.building(building_id)
        async with self.db.transaction() as conn:
            for table, what in (("access_points", "access points"), ("apartments", "apartments")):
                inside = await run(
                    conn,
                    f"SELECT COUNT(*) AS n FROM {table} WHERE building_id = :id",
                    id=building_id,
                )
                if int(inside[0]["n"]):
                    raise ConflictError(f"building {building_id!r} still has {what}")
            await run(conn, "DELETE FROM buildings WHERE id = :id", id=building_id)
            await record(
                conn,
                self.db.dialect,
                actor=actor,
                action="building.delete",
                reason=details(building_id=building_id),
            )

    # -- apartments --------------------------------------------------------------------------

    async def apartments(self, *, building_id: str | None = None) -> list[dict[str, Any]]:
        where = " WHERE a.building_id = :b" if building_id else ""
        return [
            dict(r)
            for r in await self.db.fetch_all(
                "SELECT a.id, a.building_id, a.number, (SELECT COUNT(*) FROM residencies r "
                "WHERE r.apartment_id = a.id AND r.moved_out_at IS NULL) AS residents "
                f"FROM apartments a{where} ORDER BY a.id",
                b=building_id,
            )
        ]

    async def apartment(self, apartment_id: str) -> dict[str, Any]:
        rows = await self.db.fetch_all(
            "SELECT a.id, a.building_id, a.number, (SELECT COUNT(*) FROM residencies r "
            "WHERE r.apartment_id = a.id AND r.moved_out_at IS NULL) AS residents "
            "FROM apartments a WHERE a.id = :id",
            id=apartment_id,
        )
        if not rows:
            raise UnknownObjectError("apartment", apartment_id)
        return dict(rows[0])

    async def create_apartment(self, actor: str, body: object) -> dict[str, Any]:
        data = fields.body_object(body)
        fields.only(data, ("id", "building_id", "number"))
        building_id = fields.ident(data.get("building_id"), "building_id")
        number = fields.text(data.get("number"), "number", max_length=32)
        apartment_id = fields.ident(data.get("id", f"{building_id}-{number}"), "id")
        try:
            async with self.db.transaction() as conn:
                if not await run(
                    conn, "SELECT 1 AS x FROM buildings WHERE id = :id", id=building_id
                ):
                    raise InvalidFieldError("building_id", "no such building")
                clash = await run(
                    conn,
                    "SELECT id FROM apartments WHERE id = :id OR "
                    "(building_id = :b AND number = :n)",
                    id=apartment_id,
                    b=building_id,
                    n=number,
                )
                if clash:
                    same_id = any(r["id"] == apartment_id for r in clash)
                    raise ConflictError(
                        f"apartment {apartment_id!r} exists"
                        if same_id
                        else f"building {building_id!r} already has apartment {number!r}",
                        "id" if same_id else "number",
                    )
                await run(
                    conn,
                    "INSERT INTO apartments (id, building_id, number, created_at) "
                    "VALUES (:id, :b, :n, :t)",
                    id=apartment_id,
                    b=building_id,
                    n=number,
                    t=time.time(),
                )
                await record(
                    conn,
                    self.db.dialect,
                    actor=actor,
                    action="apartment.create",
                    reason=details(apartment_id=apartment_id, building_id=building_id),
                )
        except sa.exc.IntegrityError:
            raise ConflictError(f"apartment {apartment_id!r} exists", "id") from None
        return await self.apartment(apartment_id)

    async def update_apartment(self, actor: str, apartment_id: str, body: object) -> dict[str, Any]:
        data = fields.body_object(body)
        fields.only(data, ("number",))
        found = await self.apartment(apartment_id)
        if "number" in data:
            number = fields.text(data["number"], "number", max_length=32)
            try:
                async with self.db.transaction() as conn:
                    await run(
                        conn,
                        "UPDATE apartments SET number = :n WHERE id = :id",
                        n=number,
                        id=apartment_id,
                    )
                    await record(
                        conn,
                        self.db.dialect,
                        actor=actor,
                        action="apartment.update",
                        reason=details(apartment_id=apartment_id, fields="number"),
                    )
            except sa.exc.IntegrityError:
                raise ConflictError(
                    f"building {found['building_id']!r} already has apartment {number!r}",
                    "number",
                ) from None
        return await self.apartment(apartment_id)

    async def delete_apartment(self, actor: str, apartment_id: str) -> None:
        found = await self.apartment(apartment_id)
        if int(found["residents"]):
            raise ConflictError(f"apartment {apartment_id!r} still has residents")
        async with self.db.transaction() as conn:
            # Moved-out residents keep their history but no longer point at the apartment.
            await run(
                conn,
                "UPDATE residencies SET apartment_id = NULL WHERE apartment_id = :id",
                id=apartment_id,
            )
            await run(conn, "DELETE FROM apartments WHERE id = :id", id=apartment_id)
            await record(
                conn,
                self.db.dialect,
                actor=actor,
                action="apartment.delete",
                reason=details(apartment_id=apartment_id),
            )
