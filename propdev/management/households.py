"""Households: an apartment's owner invites members (family, tenants) and removes them.

A member is a resident of the owner's apartment (``residencies.household_role`` ``member``,
``invited_by`` the owner) with the owner's doors: a copy of the owner's rights, schedules
included, at the time of the invitation. Members cannot invite (``NotOwnerError``); what they
do is theirs (a guest pass a member issues is the member's). Removing a member is a move-out
(``Residents.move_out``): rights, passes, vehicles and sessions end in one transaction, and
their access tokens are refused at once on every node.

Audited as ``household.invite`` and ``household.remove`` (actor ``user:<owner>``, subject the
member), with the move-out's own entries; refused, ``denied``: ``not_owner`` (a member, or a
resident of no apartment, subject the caller), ``not_member`` (an id that is no member of the
owner's apartment).
"""

from __future__ import annotations

import secrets
import time
from typing import Any

import propdev.management.fields as fields
from propdev.accounts import ACTIVATION_CODE, ACTIVATION_CODE_TTL, issue_code
from propdev.management.changes import details, record, refused
from propdev.management.errors import NotOwnerError, UnknownObjectError
from propdev.management.residents import Residents
from propdev.security import create_user
from propdev.storage import Database, Row, run

OWNER, MEMBER = "owner", "member"
INVITE, REMOVE = "household.invite", "household.remove"


def resident_actor(user_id: str) -> str:
    return f"user:{user_id}"


class Households:
    def __init__(
        self, db: Database, residents: Residents, *, activation_ttl: float = ACTIVATION_CODE_TTL
    ) -> None:
        self.db = db
        self.residents = residents
        self.activation_ttl = activation_ttl

    async def _residency(self, user_id: str) -> Row | None:
        return await self.db.fetch_one(
            "SELECT r.apartment_id, r.household_role, r.invited_by, u.username FROM residencies r"
            " JOIN users u ON u.id = r.user_id WHERE r.user_id = :u AND r.moved_out_at IS NULL",
            u=user_id,
        )

    async def _owned_apartment(self, owner_id: str, action: str | None = None) -> str:
        """The owner's apartment; ``NotOwnerError`` (audited ``denied`` as ``action``, if
        given) for anyone else."""
        row = await self._residency(owner_id)
        if row is None or row["apartment_id"] is None or row["household_role"] != OWNER:
            if action is not None:
                await refused(
                    self.db,
                    actor=resident_actor(owner_id),
                    action=action,
                    reason=f"not_owner {details(user_id=owner_id)}",
                    subject=owner_id,
                )
            raise NotOwnerError("only an apartment's owner invites or removes members")
        return str(row["apartment_id"])

    async def members(self, owner_id: str) -> list[dict[str, Any]]:
        """The owner's members who live there."""
        apartment_id = await self._owned_apartment(owner_id)
        rows = await self.db.fetch_all(
            "SELECT r.user_id FROM residencies r WHERE r.apartment_id = :a"
            " AND r.household_role = 'member' AND r.moved_out_at IS NULL ORDER BY r.since",
            a=apartment_id,
        )
        found = [await self.residents.get(str(r["user_id"])) for r in rows]
        return [
            {k: m[k] for k in ("id", "username", "full_name", "phone", "status")} for m in found
        ]

    async def invite(self, owner_id: str, body: object) -> dict[str, Any]:
        """A member in the owner's apartment with the owner's doors; its id, username and
        activation code (shown once)."""
        apartment_id = await self._owned_apartment(owner_id, INVITE)
        data = fields.body_object(body)
        fields.only(data, ("full_name", "phone"))
        full_name = fields.text(data.get("full_name"), "full_name")
        phone = fields.phone(data["phone"]) if "phone" in data else ""  # null is not a phone
        username = f"member-{secrets.token_hex(4)}"
        user_id = await create_user(
            self.db,
            username=username,
            password=secrets.token_urlsafe(15),  # never shown: the member activates
            roles=["resident"],
            full_name=full_name,
            phone=phone,
        )
        now = time.time()
        code, statements = issue_code(
            self.db, user_id, ACTIVATION_CODE, ttl=self.activation_ttl, now=now
        )
        async with self.db.transaction() as conn:
            for sql, params in statements:
                await run(conn, sql, **params)
            await run(
                conn,
                "INSERT INTO residencies (user_id, apartment_id, since, household_role,"
                " invited_by) VALUES (:u, :a, :t, 'member', :o)",
                u=user_id,
                a=apartment_id,
                t=now,
                o=owner_id,
            )
            doors = await run(
                conn,
                "INSERT INTO rights (user_id, access_point_id, schedule)"
                " SELECT :m, access_point_id, schedule FROM rights WHERE user_id = :o"
                " RETURNING access_point_id",
                m=user_id,
                o=owner_id,
            )
            await record(
                conn,
                self.db.dialect,
                actor=resident_actor(owner_id),
                action=INVITE,
                reason=details(user_id=user_id, apartment_id=apartment_id, doors=len(doors)),
                at=now,
                subject=user_id,
            )
        return {"id": user_id, "username": username, "activation_code": code}

    async def remove(self, owner_id: str, member_id: str) -> dict[str, Any]:
        """Move the member out (their access ends at once); ``UnknownObjectError`` unless they
        are a member of the owner's apartment who lives there."""
        apartment_id = await self._owned_apartment(owner_id, REMOVE)
        row = await self._residency(member_id)
        if row is None or row["household_role"] != MEMBER or row["apartment_id"] != apartment_id:
            await refused(  # subject the owner: the id may be anyone's, or no one's
                self.db,
                actor=resident_actor(owner_id),
                action=REMOVE,
                reason=f"not_member {details(user_id=member_id, apartment_id=apartment_id)}",
                subject=owner_id,
            )
            raise UnknownObjectError("household member", member_id)
        async with self.db.transaction() as conn:
            await record(
                conn,
                self.db.dialect,
                actor=resident_actor(owner_id),
                action=REMOVE,
                reason=details(user_id=member_id, apartment_id=apartment_id),
                subject=member_id,
            )
        return await self.residents.move_out(resident_actor(owner_id), member_id)
