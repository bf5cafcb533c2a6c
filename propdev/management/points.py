"""Access points and their devices: one access point is one device of one partner.

``PointSpec`` is what an operator says an access point is; ``Catalogue`` is what the store
holds, loaded once, so that a whole CSV import or partner sync is checked line by line against
the estate *as the earlier lines left it* (a dry run answers what the real run would do).

Deleting an access point ends what depends on it, in the same transaction: its rights are
withdrawn, it leaves every guest pass (a pass left with no access point is revoked), and its
device state is forgotten. Its audit history stays: the audit log holds the id, not a
reference.
"""

from __future__ import annotations

import time
from collections.abc import Collection, Mapping
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

import propdev.management.fields as fields
from propdev.access import trail
from propdev.management.changes import details, record
from propdev.management.errors import ConflictError, InvalidFieldError, UnknownObjectError
from propdev.management.within import at_sites
from propdev.storage import Database, run

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection

FIELDS = ("id", "name", "kind", "building_id", "partner", "device_id")
_COLUMNS = "id, name, kind, site_id, building_id, partner_id, device_id, gone_at"


@dataclass(frozen=True, slots=True)
class PointSpec:
    id: str
    name: str
    kind: str
    building_id: str
    partner: str
    device_id: str

    @classmethod
    def parse(cls, data: Mapping[str, Any]) -> PointSpec:
        return cls(
            id=fields.ident(data.get("id"), "id"),
            name=fields.text(data.get("name"), "name"),
            kind=fields.kind(data.get("kind")),
            building_id=fields.ident(data.get("building_id"), "building_id"),
            partner=fields.ident(data.get("partner"), "partner"),
            device_id=fields.text(data.get("device_id"), "device_id", max_length=128),
        )

    def with_changes(self, data: Mapping[str, Any]) -> PointSpec:
        """This spec with the fields of a partial update applied (each validated)."""
        return PointSpec.parse({**asdict(self), **data, "id": self.id})


@dataclass(frozen=True, slots=True)
class Point:
    """An access point as stored."""

    spec: PointSpec
    site_id: str
    gone_at: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self.spec), "site_id": self.site_id, "gone_at": self.gone_at}

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Point:
        spec = PointSpec(
            row["id"],
            row["name"],
            row["kind"],
            row["building_id"],
            row["partner_id"],
            row["device_id"],
        )
        return cls(spec, row["site_id"], row["gone_at"])


class Catalogue:
    """The access points, buildings and partners of the store, changed in memory as a batch
    is checked; ``check`` raises what the store would refuse."""

    def __init__(
        self, points: list[Point], buildings: Mapping[str, str], partners: set[str]
    ) -> None:
        self.points = {p.spec.id: p for p in points}
        self.buildings = dict(buildings)  # building id -> site id
        self.partners = partners
        self._devices = {(p.spec.partner, p.spec.device_id): p.spec.id for p in points}

    @classmethod
    async def load(cls, conn: AsyncConnection) -> Catalogue:
        points = [
            Point.from_row(r) for r in await run(conn, f"SELECT {_COLUMNS} FROM access_points")
        ]
        buildings = {
            r["id"]: r["site_id"] for r in await run(conn, "SELECT id, site_id FROM buildings")
        }
        partners = {r["id"] for r in await run(conn, "SELECT id FROM partners")}
        return cls(points, buildings, partners)

    def holder(self, partner: str, device_id: str) -> str | None:
        return self._devices.get((partner, device_id))

    def check(self, spec: PointSpec) -> None:
        if spec.building_id not in self.buildings:
            raise InvalidFieldError("building_id", "no such building")
        if spec.partner not in self.partners:
            raise InvalidFieldError("partner", "no such partner")
        holder = self.holder(spec.partner, spec.device_id)
        if holder is not None and holder != spec.id:
            raise ConflictError(
                f"device {spec.device_id!r} of partner {spec.partner!r} is access point {holder!r}",
                "device_id",
            )

    def put(self, spec: PointSpec, *, gone_at: float | None = None) -> Point:
        """Record ``spec`` (already checked) in memory; return the new point."""
        old = self.points.get(spec.id)
        if old is not None:
            self._devices.pop((old.spec.partner, old.spec.device_id), None)
        point = Point(spec, self.buildings[spec.building_id], gone_at)
        self.points[spec.id] = point
        self._devices[(spec.partner, spec.device_id)] = spec.id
        return point

    def mark_gone(self, point_id: str, at: float) -> Point:
        point = replace(self.points[point_id], gone_at=at)
        self.points[point_id] = point
        return point


async def write(conn: AsyncConnection, point: Point) -> None:
    """Insert or update one access point (its spec, site and ``gone_at``)."""
    s = point.spec
    await run(
        conn,
        f"INSERT INTO access_points ({_COLUMNS}) VALUES (:id, :name, :kind, :site, :building, "
        ":partner, :device, :gone) ON CONFLICT (id) DO UPDATE SET name = :name, kind = :kind, "
        "site_id = :site, building_id = :building, partner_id = :partner, device_id = :device, "
        "gone_at = :gone",
        id=s.id,
        name=s.name,
        kind=s.kind,
        site=point.site_id,
        building=s.building_id,
        partner=s.partner,
        device=s.device_id,
        gone=point.gone_at,
    )


def changed_fields(old: Point | None, new: Point) -> list[str]:
    if old is None:
        return list(FIELDS)
    before, after = asdict(old.spec), asdict(new.spec)
    out = [f for f in FIELDS if before[f] != after[f]]
    if old.gone_at is not None and new.gone_at is None:
        out.append("gone_at")
    return out


class AccessPoints:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def list(
        self,
        *,
        building_id: str | None = None,
        partner: str | None = None,
        sites: Collection[str] | None = None,
    ) -> list[dict[str, Any]]:
        within, params = at_sites("site_id", sites)
        where = [within]
        if building_id:
            where.append("building_id = :b")
            params["b"] = building_id
        if partner:
            where.append("partner_id = :p")
            params["p"] = partner
        clause = f" WHERE {' AND '.join(where)}" if where else ""
        rows = await self.db.fetch_all(
            f"SELECT {_COLUMNS} FROM access_points{clause} ORDER BY id", **params
        )
        return [Point.from_row(r).to_json() for r in rows]

    async def get(self, point_id: str) -> Point:
        row = await self.db.fetch_one(
            f"SELECT {_COLUMNS} FROM access_points WHERE id = :id", id=point_id
        )
        if row is None:
            raise UnknownObjectError("access point", point_id)
        return Point.from_row(row)

    async def create(self, actor: str, body: object) -> Point:
        """Register one device as a new access point."""
        data = fields.body_object(body)
        fields.only(data, FIELDS)
        spec = PointSpec.parse(data)
        try:
            async with self.db.transaction() as conn:
                catalogue = await Catalogue.load(conn)
                if spec.id in catalogue.points:
                    raise ConflictError(f"access point {spec.id!r} exists", "id")
                catalogue.check(spec)
                point = catalogue.put(spec)
                await write(conn, point)
                await record(
                    conn,
                    self.db.dialect,
                    actor=actor,
                    action="access_point.create",
                    access_point_id=spec.id,
                    reason=details(
                        partner=spec.partner, device_id=spec.device_id, building_id=spec.building_id
                    ),
                )
        except sa.exc.IntegrityError:
            raise ConflictError("the access point or its device was registered meanwhile") from None
        return point

    async def update(self, actor: str, point_id: str, body: object) -> Point:
        data = fields.body_object(body)
        fields.only(data, tuple(f for f in FIELDS if f != "id"))
        try:
            async with self.db.transaction() as conn:
                catalogue = await Catalogue.load(conn)
                old = catalogue.points.get(point_id)
                if old is None:
                    raise UnknownObjectError("access point", point_id)
                spec = old.spec.with_changes(data)
                catalogue.check(spec)
                point = catalogue.put(spec, gone_at=old.gone_at)
                changed = changed_fields(old, point)
                if changed:
                    await write(conn, point)
                    await record(
                        conn,
                        self.db.dialect,
                        actor=actor,
                        action="access_point.update",
                        access_point_id=point_id,
                        reason=details(fields=",".join(changed)),
                    )
        except sa.exc.IntegrityError:
            raise ConflictError("the device was registered meanwhile", "device_id") from None
        return point

    async def delete(self, actor: str, point_id: str) -> dict[str, int]:
        """Delete the access point, ending its rights and its place on guest passes."""
        now = time.time()
        async with self.db.transaction() as conn:
            if not await run(conn, "SELECT 1 AS x FROM access_points WHERE id = :id", id=point_id):
                raise UnknownObjectError("access point", point_id)
            rights = await run(
                conn, "SELECT COUNT(*) AS n FROM rights WHERE access_point_id = :a", a=point_id
            )
            await run(conn, "DELETE FROM rights WHERE access_point_id = :a", a=point_id)
            passes = await run(
                conn,
                "SELECT pass_id FROM guest_pass_access_points WHERE access_point_id = :a "
                "ORDER BY pass_id",
                a=point_id,
            )
            await run(
                conn, "DELETE FROM guest_pass_access_points WHERE access_point_id = :a", a=point_id
            )
            revoked = 0
            for row in passes:
                left = await run(
                    conn,
                    "SELECT COUNT(*) AS n FROM guest_pass_access_points WHERE pass_id = :p",
                    p=row["pass_id"],
                )
                gone: list[Any] = []
                if not int(left[0]["n"]):
                    gone = await run(
                        conn,
                        "UPDATE guest_passes SET revoked_at = :t WHERE id = :p "
                        "AND revoked_at IS NULL RETURNING id",
                        t=now,
                        p=row["pass_id"],
                    )
                    revoked += len(gone)
                await record(  # each pass that lost the access point, or was revoked for it
                    conn,
                    self.db.dialect,
                    actor=actor,
                    action=trail.PASS_REVOKE if gone else trail.PASS_CHANGE,
                    access_point_id=point_id,
                    reason=details(
                        pass_id=row["pass_id"],
                        removed_access_point_id=point_id,
                        cause="access_point.delete",
                    ),
                    at=now,
                )
            await run(conn, "DELETE FROM device_state WHERE access_point_id = :a", a=point_id)
            await run(conn, "DELETE FROM access_points WHERE id = :a", a=point_id)
            report = {
                "rights_ended": int(rights[0]["n"]),
                "passes_changed": len(passes),
                "passes_revoked": revoked,
            }
            await record(
                conn,
                self.db.dialect,
                actor=actor,
                action="access_point.delete",
                access_point_id=point_id,
                reason=details(**report),
                at=now,
            )
        return report
