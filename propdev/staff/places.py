"""Where each kind of resource is (``Place``), read from the store; None when there is no such
resource (the caller's own 404 or 422 then answers, as without a scope).

- a site is at itself; a building, an apartment, an access point at their site;
- a resident at the site of their apartment (none: the organisation's);
- a guest pass at the sites of its doors;
- a staff member at their ``site_ids`` (none: the organisation's);
- an actor: a device actor at its door's site, a session actor at its resident's, the others
  (partners, node services) at the organisation's;
- a partner at the organisation's (partners serve many sites; managed by organisation admins).
"""

from __future__ import annotations

import enum
import json
from collections.abc import Sequence

from propdev.staff.scope import ORGANISATION, Place
from propdev.storage import Database

RESIDENT_SITE = (
    "SELECT b.site_id AS site FROM residencies r JOIN apartments a ON a.id = r.apartment_id"
    " JOIN buildings b ON b.id = a.building_id WHERE r.user_id = :id"
)


class Kind(enum.StrEnum):
    SITE = "site"
    BUILDING = "building"
    APARTMENT = "apartment"
    ACCESS_POINT = "access_point"
    RESIDENT = "resident"
    GUEST_PASS = "guest_pass"
    STAFF = "staff"
    ACTOR = "actor"
    PARTNER = "partner"


_SITES: dict[Kind, str] = {
    Kind.SITE: "SELECT id AS site FROM sites WHERE id = :id",
    Kind.BUILDING: "SELECT site_id AS site FROM buildings WHERE id = :id",
    Kind.APARTMENT: (
        "SELECT b.site_id AS site FROM apartments a JOIN buildings b ON b.id = a.building_id"
        " WHERE a.id = :id"
    ),
    Kind.ACCESS_POINT: "SELECT site_id AS site FROM access_points WHERE id = :id",
    Kind.GUEST_PASS: (
        "SELECT ap.site_id AS site FROM guest_passes p"
        " LEFT JOIN guest_pass_access_points g ON g.pass_id = p.id"
        " LEFT JOIN access_points ap ON ap.id = g.access_point_id WHERE p.id = :id"
    ),
}


async def place_of(db: Database, kind: Kind, ident: str) -> Place | None:
    """Where the ``kind`` ``ident`` is, or None when there is none."""
    if kind is Kind.PARTNER:
        found = await db.fetch_one("SELECT id FROM partners WHERE id = :id", id=ident)
        return ORGANISATION if found is not None else None
    if kind is Kind.RESIDENT:
        return await _resident(db, ident)
    if kind is Kind.STAFF:
        return await _staff(db, ident)
    if kind is Kind.ACTOR:
        return await _actor(db, ident)
    rows = await db.fetch_all(_SITES[kind], id=ident)
    if not rows:
        return None
    return Place.at(str(r["site"]) for r in rows if r["site"] is not None)


async def _resident(db: Database, user_id: str) -> Place | None:
    user = await db.fetch_one("SELECT roles FROM users WHERE id = :id", id=user_id)
    if user is None or "resident" not in str(user["roles"]).split(","):
        return None
    return Place.at(str(r["site"]) for r in await db.fetch_all(RESIDENT_SITE, id=user_id))


async def _staff(db: Database, user_id: str) -> Place | None:
    row = await db.fetch_one(
        "SELECT u.roles, s.site_ids FROM users u LEFT JOIN staff s ON s.user_id = u.id"
        " WHERE u.id = :id",
        id=user_id,
    )
    if row is None:
        return None
    sites = decode_sites(row["site_ids"])
    return ORGANISATION if sites is None else Place.at(sites)


async def _actor(db: Database, actor_id: str) -> Place:
    kind, _, ident = actor_id.partition(":")
    if kind == "device" and ident:
        return await place_of(db, Kind.ACCESS_POINT, ident) or ORGANISATION
    if kind == "session" and ident:
        return await _resident(db, ident) or ORGANISATION
    return ORGANISATION


def decode_sites(raw: object) -> frozenset[str] | None:
    """``staff.site_ids`` as stored (a JSON array, or NULL for the organisation)."""
    if raw is None:
        return None
    value = json.loads(str(raw))
    return frozenset(str(s) for s in value)


def encode_sites(sites: Sequence[str] | frozenset[str] | None) -> str | None:
    return None if sites is None else json.dumps(sorted(sites))


def in_clause(name: str, values: frozenset[str]) -> tuple[str, dict[str, str]]:
    """``(:name0, :name1, ...)`` and its parameters, for ``IN`` (``('')`` when empty)."""
    if not values:
        return "(NULL)", {}
    params = {f"{name}{i}": v for i, v in enumerate(sorted(values))}
    return "(" + ", ".join(f":{k}" for k in params) + ")", params
