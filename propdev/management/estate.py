"""Sites, buildings and apartments: listing, creating, renaming and deleting them.

A delete is refused (``ConflictError``) while something still lives inside: buildings in a
site, apartments or access points in a building, residents (not moved out) in an apartment.
"""

from __future__ import annotations

import time
from collections.abc import Collection, Sequence
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

import propdev.management.fields as fields
from propdev.management.changes import details, record
from propdev.management.errors import ConflictError, InvalidFieldError, UnknownObjectError
from propdev.management.within import APARTMENTS_AT, at_sites, in_subquery
from propdev.storage import Database, run

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection


class Estate:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def _record(self, conn: AsyncConnection, actor: str, action: str, **ids: object) -> None:
        """Audit the change ``action`` with its ids, in the transaction that makes it."""
        await record(conn, self.db.dialect, actor=actor, action=action, reason=details(**ids))

    async def _delete_empty(
        self,
        actor: str,
        kind: str,
        table: str,
        object_id: str,
        inside: Sequence[tuple[str, str]],
    ) -> None:
        """Delete ``object_id`` of ``table`` and audit ``<kind>.delete``; ``ConflictError`` while
        a row of an ``inside`` table (with the column naming it) still points at it."""
        async with self.db.transaction() as conn:
            for inner, column in inside:
                rows = await run(
                    conn, f"SELECT COUNT(*) AS n FROM {inner} WHERE {column} = :id", id=object_id
                )
                if int(rows[0]["n"]):
                    what = inner.replace("_", " ")
                    raise ConflictError(f"{kind} {object_id!r} still has {what}")
            await run(conn, f"DELETE FROM {table} WHERE id = :id", id=object_id)
            await self._record(conn, actor, f"{kind}.delete", **{f"{kind}_id": object_id})

    async def _one(self, kind: str, sql: str, object_id: str) -> dict[str, Any]:
        """The row ``sql`` reads for ``object_id`` (its ``:id``); ``UnknownObjectError`` if none."""
        row = await self.db.fetch_one(sql, id=object_id)
        if row is None:
            raise UnknownObjectError(kind, object_id)
        return dict(row)

    # -- sites -------------------------------------------------------------------------------

    async def sites(self, *, sites: Collection[str] | None = None) -> list[dict[str, Any]]:
        """The sites (of ``sites`` only, when given)."""
        within, params = at_sites("id", sites)
        return [
            dict(r)
            for r in await self.db.fetch_all(
                f"SELECT id, name, timezone FROM sites WHERE {within} ORDER BY id", **params
            )
        ]

    async def site(self, site_id: str) -> dict[str, Any]:
        return await self._one(
            "site", "SELECT id, name, timezone FROM sites WHERE id = :id", site_id
        )

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
            await self._record(
                conn, actor, "site.create", site_id=site["id"], timezone=site["timezone"]
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
                await self._record(
                    conn, actor, "site.update", site_id=site_id, fields=",".join(sorted(changes))
                )
        return await self.site(site_id)

    async def delete_site(self, actor: str, site_id: str) -> None:
        await self.site(site_id)
        await self._delete_empty(actor, "site", "sites", site_id, [("buildings", "site_id")])

    # -- buildings ---------------------------------------------------------------------------

    async def buildings(
        self, *, site_id: str | None = None, sites: Collection[str] | None = None
    ) -> list[dict[str, Any]]:
        where = " AND site_id = :s" if site_id else ""
        within, params = at_sites("site_id", sites)
        return [
            dict(r)
            for r in await self.db.fetch_all(
                f"SELECT id, site_id, name FROM buildings WHERE {within}{where} ORDER BY id",
                s=site_id,
                **params,
            )
        ]

    async def building(self, building_id: str) -> dict[str, Any]:
        return await self._one(
            "building", "SELECT id, site_id, name FROM buildings WHERE id = :id", building_id
        )

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
            await self._record(
                conn,
                actor,
                "building.create",
                building_id=building["id"],
                site_id=building["site_id"],
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
                await self._record(
                    conn, actor, "building.update", building_id=building_id, fields="name"
                )
        return await self.building(building_id)

    async def delete_building(self, actor: str, building_id: str) -> None:
        await self.building(building_id)
        await self._delete_empty(
            actor,
            "building",
            "buildings",
            building_id,
            [("access_points", "building_id"), ("apartments", "building_id")],
        )

    # -- apartments --------------------------------------------------------------------------

    async def apartments(
        self, *, building_id: str | None = None, sites: Collection[str] | None = None
    ) -> list[dict[str, Any]]:
        where = " AND a.building_id = :b" if building_id else ""
        within, params = in_subquery("a.id", APARTMENTS_AT, sites)
        return [
            dict(r)
            for r in await self.db.fetch_all(
                "SELECT a.id, a.building_id, a.number, (SELECT COUNT(*) FROM residencies r "
                "WHERE r.apartment_id = a.id AND r.moved_out_at IS NULL) AS residents "
                f"FROM apartments a WHERE {within}{where} ORDER BY a.id",
                b=building_id,
                **params,
            )
        ]

    async def apartment(self, apartment_id: str) -> dict[str, Any]:
        return await self._one(
            "apartment",
            "SELECT a.id, a.building_id, a.number, (SELECT COUNT(*) FROM residencies r "
            "WHERE r.apartment_id = a.id AND r.moved_out_at IS NULL) AS residents "
            "FROM apartments a WHERE a.id = :id",
            apartment_id,
        )

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
                await self._record(
                    conn,
                    actor,
                    "apartment.create",
                    apartment_id=apartment_id,
                    building_id=building_id,
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
                    await self._record(
                        conn, actor, "apartment.update", apartment_id=apartment_id, fields="number"
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
            await self._record(conn, actor, "apartment.delete", apartment_id=apartment_id)
