"""Residents: invite (an account with the resident role, in an apartment), list (personal data
opened for the operator), and move out.

An invitation answers a temporary password and an activation code once (neither is stored in
clear, logged or audited): the resident signs in with the first, or chooses a password with
the second (``POST /api/v1/activation``, ``propdev.accounts``).

A move-out ends everything at once, in one transaction: rights withdrawn, guest passes
revoked, vehicles removed (their plates no longer open the barrier), refresh-token families
and unused authorization codes revoked, push tokens forgotten, the password made unusable;
then the resident's access tokens are refused (``SessionCutoffs``).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Collection, Sequence
from typing import Any, NamedTuple

import propdev.management.fields as fields
from propdev.access import trail
from propdev.accounts import ACTIVATION_CODE, ACTIVATION_CODE_TTL, issue_code
from propdev.management.changes import details, record
from propdev.management.cutoffs import SessionCutoffs
from propdev.management.errors import ConflictError, InvalidFieldError, UnknownObjectError
from propdev.management.within import APARTMENTS_AT, in_subquery
from propdev.security import User, create_user, vault_of, wrapped_key_of
from propdev.storage import Database, run

MOVED_OUT_HASH = "!moved-out"  # not an Argon2 hash: no password verifies against it
ROLE = "resident"


def _role_filter() -> str:
    return "(',' || u.roles || ',') LIKE '%,resident,%'"


class Invitation(NamedTuple):
    """A new resident and what they get once: a temporary password, an activation code."""

    resident: dict[str, Any]
    temporary_password: str
    activation_code: str
    activation_expires_at: float


class Residents:
    def __init__(
        self,
        db: Database,
        cutoffs: SessionCutoffs,
        *,
        activation_ttl: float = ACTIVATION_CODE_TTL,
    ) -> None:
        self.db = db
        self.cutoffs = cutoffs
        self.activation_ttl = activation_ttl

    async def read_all(
        self,
        actor: str,
        *,
        apartment_id: str | None = None,
        sites: Collection[str] | None = None,
    ) -> list[dict[str, Any]]:
        """``list`` for a member of staff: one ``resident.read`` entry per resident answered
        (each its own subject), appended before the answer; none written, no answer."""
        found = await self.list(apartment_id=apartment_id, sites=sites)
        await self._read(actor, [r["id"] for r in found], "list", apartment_id=apartment_id)
        return found

    async def read(self, actor: str, user_id: str) -> dict[str, Any]:
        """``get`` for a member of staff, with its ``resident.read`` entry (as ``read_all``)."""
        found = await self.get(user_id)
        await self._read(actor, [user_id], "get")
        return found

    async def _read(self, actor: str, user_ids: Sequence[str], via: str, **filters: object) -> None:
        if not user_ids:
            return
        now = time.time()
        given = {k: v for k, v in filters.items() if v is not None}
        async with self.db.transaction() as conn:
            for user_id in user_ids:
                await record(
                    conn,
                    self.db.dialect,
                    actor=actor,
                    subject=user_id,
                    action="resident.read",
                    reason=details(user_id=user_id, via=via, read=len(user_ids), **given),
                    at=now,
                )

    async def list(
        self, *, apartment_id: str | None = None, sites: Collection[str] | None = None
    ) -> list[dict[str, Any]]:
        """Residents (living at ``sites`` only, when given)."""
        where = " AND r.apartment_id = :a" if apartment_id else ""
        within, params = in_subquery("r.apartment_id", APARTMENTS_AT, sites)
        rows = await self.db.fetch_all(
            "SELECT u.*, r.apartment_id AS apartment_id, r.moved_out_at AS moved_out_at, "
            f"{wrapped_key_of('u.id')} "
            f"FROM users u LEFT JOIN residencies r ON r.user_id = u.id WHERE {_role_filter()}"
            f" AND {within}{where} ORDER BY u.username",
            a=apartment_id,
            **params,
        )
        vault = vault_of(self.db)
        return [self._json(User.from_row(row, vault), row) for row in rows]

    async def get(self, user_id: str) -> dict[str, Any]:
        row = await self.db.fetch_one(
            "SELECT u.*, r.apartment_id AS apartment_id, r.moved_out_at AS moved_out_at, "
            f"{wrapped_key_of('u.id')} "
            f"FROM users u LEFT JOIN residencies r ON r.user_id = u.id WHERE {_role_filter()} "
            "AND u.id = :id",
            id=user_id,
        )
        if row is None:
            raise UnknownObjectError("resident", user_id)
        return self._json(User.from_row(row, vault_of(self.db)), row)

    @staticmethod
    def _json(user: User, row: Any) -> dict[str, Any]:
        return {
            "id": user.id,
            "username": user.username,
            "full_name": user.full_name,
            "phone": user.phone,
            "apartment_id": row["apartment_id"],
            "status": "moved_out" if row["moved_out_at"] is not None else "active",
            "moved_out_at": row["moved_out_at"],
        }

    async def invite(self, actor: str, body: object) -> Invitation:
        """Create the resident; return them, their temporary password and their activation
        code (shown once)."""
        data = fields.body_object(body)
        fields.only(data, ("username", "full_name", "phone", "apartment_id"))
        name = fields.username(data.get("username"))
        full_name = fields.text(data.get("full_name"), "full_name")
        phone = fields.phone(data["phone"]) if data.get("phone") is not None else ""
        apartment_id = fields.ident(data.get("apartment_id"), "apartment_id")
        if not await self.db.fetch_one(
            "SELECT 1 AS x FROM apartments WHERE id = :id", id=apartment_id
        ):
            raise InvalidFieldError("apartment_id", "no such apartment")
        if await self.db.fetch_one("SELECT 1 AS x FROM users WHERE username = :u", u=name):
            raise ConflictError(f"username {name!r} is taken", "username")
        password = secrets.token_urlsafe(15)
        user_id = await create_user(
            self.db,
            username=name,
            password=password,
            roles=[ROLE],
            full_name=full_name,
            phone=phone,
        )
        now = time.time()
        code, statements = issue_code(
            self.db, user_id, ACTIVATION_CODE, ttl=self.activation_ttl, now=now
        )
        async with self.db.transaction() as conn:
            taken = await run(conn, "SELECT 1 AS x FROM residencies WHERE user_id = :u", u=user_id)
            if taken:  # the same username was invited at this very moment
                raise ConflictError(f"username {name!r} is taken", "username")
            for sql, params in statements:
                await run(conn, sql, **params)
            await run(
                conn,
                "INSERT INTO residencies (user_id, apartment_id, since) VALUES (:u, :a, :t)",
                u=user_id,
                a=apartment_id,
                t=now,
            )
            await record(
                conn,
                self.db.dialect,
                actor=actor,
                subject=user_id,
                action="resident.invite",
                reason=details(user_id=user_id, apartment_id=apartment_id),
                at=now,
            )
        return Invitation(await self.get(user_id), password, code, now + self.activation_ttl)

    async def move_out(self, actor: str, user_id: str) -> dict[str, Any]:
        found = await self.get(user_id)
        if found["status"] == "moved_out":
            raise ConflictError(f"resident {user_id!r} has moved out already")
        now = time.time()
        async with self.db.transaction() as conn:
            rights = await run(
                conn, "DELETE FROM rights WHERE user_id = :u RETURNING access_point_id", u=user_id
            )
            passes = await run(
                conn,
                "UPDATE guest_passes SET revoked_at = :t WHERE owner_id = :u "
                "AND revoked_at IS NULL RETURNING id",
                t=now,
                u=user_id,
            )
            vehicles = await run(
                conn, "DELETE FROM vehicles WHERE owner_id = :u RETURNING id", u=user_id
            )
            tokens = await run(
                conn,
                "UPDATE oauth_refresh_tokens SET revoked = TRUE WHERE user_id = :u "
                "AND revoked = FALSE RETURNING family_id",
                u=user_id,
            )
            await run(conn, "UPDATE oauth_codes SET used = TRUE WHERE user_id = :u", u=user_id)
            # their phones get no more pushes (push tokens and pending pushes)
            await run(conn, "DELETE FROM push_outbox WHERE user_id = :u", u=user_id)
            await run(conn, "DELETE FROM push_tokens WHERE user_id = :u", u=user_id)
            await run(
                conn,
                "UPDATE users SET password_hash = :h WHERE id = :u",
                h=MOVED_OUT_HASH,
                u=user_id,
            )
            moved = await run(
                conn,
                "UPDATE residencies SET moved_out_at = :t WHERE user_id = :u RETURNING user_id",
                t=now,
                u=user_id,
            )
            if not moved:  # residents from before apartments were kept (the demo estate)
                await run(
                    conn,
                    "INSERT INTO residencies (user_id, apartment_id, since, moved_out_at) "
                    "VALUES (:u, NULL, :t, :t)",
                    u=user_id,
                    t=now,
                )
            ended = (
                (trail.PASS_REVOKE, "pass_id", passes),
                (trail.VEHICLE_REMOVE, "vehicle_id", vehicles),
            )
            for action, key, rows in ended:  # each pass and car by id, as the resident's own
                for gone in rows:
                    await record(
                        conn,
                        self.db.dialect,
                        actor=actor,
                        subject=user_id,
                        action=action,
                        reason=details(
                            **{key: gone["id"]}, owner_id=user_id, cause="resident.move_out"
                        ),
                        at=now,
                    )
            report = {
                "rights_ended": len(rights),
                "passes_revoked": len(passes),
                "vehicles_removed": len(vehicles),
                "refresh_tokens_revoked": len(tokens),
            }
            await record(
                conn,
                self.db.dialect,
                actor=actor,
                subject=user_id,
                action="resident.move_out",
                reason=details(user_id=user_id, **report),
                at=now,
            )
            await record(  # the resident's sessions end: refresh tokens now, access tokens below
                conn,
                self.db.dialect,
                actor=actor,
                subject=user_id,
                action="auth.revoke",
                reason=details(
                    user_id=user_id,
                    cause="resident.move_out",
                    refresh_tokens=len(tokens),
                    access_tokens="all",
                ),
                at=now,
            )
        await self.cutoffs.cut(user_id, now)
        return {"id": user_id, "moved_out_at": now, **report}
