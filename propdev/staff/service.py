"""``Staff``: scopes of staff calls, and staff accounts' lifecycle.

- ``scope_of`` reads a caller's roles and sites from the store at each call, so a change of
  roles or scope, or a disabled account, counts at once on every node;
- ``create`` makes an account with no usable password and no second factor, and an
  activation code (``account_codes``, as residents'): ``POST /api/v1/activation`` with it sets
  the password and answers the TOTP seed; the first login with a code from it completes the
  enrolment (``propdev.accounts``);
- ``change`` sets roles, sites, full name; ``disable`` ends the account: no password, refresh
  tokens revoked, access tokens refused on every node (``cut``, the move-out's revocation);
  ``reset_2fa`` drops the TOTP seed, the recovery codes and the sessions, with a new
  activation code.

The last active organisation-wide ``admin`` can be neither disabled nor narrowed
(``StaffConflictError``). A scoped administrator sees staff who share one of its sites and
changes only those whose sites are all its own; it hands out only its own sites. Each change is
audited in its transaction: actor ``operator:<caller>``, action ``operator.create``,
``operator.change``, ``operator.disable`` or ``operator.reset_2fa``, subject the account.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from propdev.accounts import ACTIVATION_CODE, ACTIVATION_CODE_TTL, issue_code
from propdev.security import (
    User,
    normalize_username,
    person_key_in,
    seal_user_fields,
    vault_of,
    wrapped_key_of,
)
from propdev.staff.errors import (
    InvalidStaffFieldError,
    NotPermittedError,
    OutOfScopeError,
    StaffConflictError,
)
from propdev.staff.matrix import STAFF_ROLES, Role, staff_roles
from propdev.staff.places import Kind, decode_sites, encode_sites, in_clause, place_of
from propdev.staff.scope import ORGANISATION, Place, Scope
from propdev.storage import Database, Row, UnitConnection, audit

CREATE, CHANGE, DISABLE, RESET_2FA = (
    "operator.create",
    "operator.change",
    "operator.disable",
    "operator.reset_2fa",
)
PENDING_HASH = "!activation"  # not an Argon2 hash: no password verifies until activation
DISABLED_HASH = "!disabled"
MAX_USERNAME = 64
MAX_NAME = 200
_ADMIN_LOCK = 74214  # PostgreSQL advisory lock: one change of an administrator at a time

Cut = Callable[[str, float], Awaitable[None]]
EndGrant = Callable[[str, float], Awaitable[None]]

_STAFF_ROW = (
    "SELECT u.id, u.username, u.roles, u.full_name, u.phone, u.totp_secret, u.password_hash,"
    " u.created_at, s.site_ids, s.disabled_at, " + wrapped_key_of("u.id") + " FROM users u"
    " LEFT JOIN staff s ON s.user_id = u.id"
)
_IS_STAFF = " OR ".join(f"(',' || u.roles || ',') LIKE '%,{r},%'" for r in sorted(STAFF_ROLES))


def actor(user_id: str) -> str:
    return f"operator:{user_id}"


@dataclass(frozen=True, slots=True)
class Visible:
    """What a scope lets a caller see of things listed by id; None: everything."""

    access_points: frozenset[str] | None
    residents: frozenset[str] | None
    partners: frozenset[str] | None

    def actor(self, actor_id: str) -> bool:
        """True when the actor ``actor_id`` (``kind:id``) belongs to the visible estate."""
        if self.access_points is None:
            return True
        kind, _, ident = actor_id.partition(":")
        if kind == "device":
            return ident in self.access_points
        if kind == "session":
            return self.residents is not None and ident in self.residents
        return False

    def partner(self, partner_id: str) -> bool:
        return self.partners is None or partner_id in self.partners

    def tree(self, snapshot: Mapping[str, Any]) -> dict[str, Any]:
        """A supervision tree's snapshot (``/admin/api/v1/actors``) with only the visible
        actors (supervisors stay: they are the node's structure, not a site's)."""
        if self.access_points is None:
            return dict(snapshot)
        return {
            **snapshot,
            "supervisors": [self.tree(s) for s in snapshot.get("supervisors", [])],
            "actors": [a for a in snapshot.get("actors", []) if self.actor(str(a.get("id")))],
        }


EVERYTHING = Visible(None, None, None)


class Staff:
    def __init__(
        self,
        db: Database,
        *,
        cut: Cut,
        end_grant: EndGrant | None = None,
        token_ttl: float = 900.0,
        activation_ttl: float = ACTIVATION_CODE_TTL,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.db = db
        self.cut = cut
        self.end_grant = end_grant
        self.token_ttl = token_ttl
        self.activation_ttl = activation_ttl
        self.clock = clock

    # -- scope ----------------------------------------------------------------------------

    async def scope_of(self, user_id: str, token_roles: Iterable[str]) -> Scope | None:
        """The caller's scope, or None when they are no (longer) staff. An account of an
        external identity provider (no local account) is organisation-wide with its token's
        staff roles."""
        row = await self.db.fetch_one(
            "SELECT u.roles, s.site_ids, s.disabled_at FROM users u"
            " LEFT JOIN staff s ON s.user_id = u.id WHERE u.id = :id",
            id=user_id,
        )
        if row is None:
            roles = staff_roles(token_roles)
            return Scope(user_id, roles, None) if roles else None
        if row["disabled_at"] is not None:
            return None
        roles = staff_roles(str(row["roles"]).split(","))
        if not roles:
            return None
        return Scope(user_id, roles, decode_sites(row["site_ids"]))

    async def place(self, kind: Kind, ident: str) -> Place | None:
        return await place_of(self.db, kind, ident)

    async def visible(self, scope: Scope) -> Visible:
        """The access points, residents and partners (of those access points) in scope."""
        if scope.site_ids is None:
            return EVERYTHING
        sites, params = in_clause("s", scope.site_ids)
        points = await self.db.fetch_all(
            f"SELECT id, partner_id FROM access_points WHERE site_id IN {sites}", **params
        )
        residents = await self.db.fetch_all(
            "SELECT r.user_id FROM residencies r JOIN apartments a ON a.id = r.apartment_id"
            f" JOIN buildings b ON b.id = a.building_id WHERE b.site_id IN {sites}",
            **params,
        )
        return Visible(
            frozenset(str(p["id"]) for p in points),
            frozenset(str(r["user_id"]) for r in residents),
            frozenset(str(p["partner_id"]) for p in points),
        )

    # -- reading --------------------------------------------------------------------------

    async def list(self, scope: Scope) -> list[dict[str, Any]]:
        """The staff the caller sees, by username."""
        rows = await self.db.fetch_all(f"{_STAFF_ROW} WHERE {_IS_STAFF} ORDER BY u.username")
        vault = vault_of(self.db)
        return [_json(row, vault) for row in rows if scope.reaches(_place(row["site_ids"]))]

    async def get(self, scope: Scope, user_id: str) -> dict[str, Any]:
        return _json(await self._visible_row(scope, user_id), vault_of(self.db))

    # -- changes --------------------------------------------------------------------------

    async def create(self, scope: Scope, body: object) -> dict[str, Any]:
        """Create a staff account; its id, username and activation code (shown once)."""
        data = _object(body, ("username", "full_name", "roles", "site_ids"), required=True)
        name = _username(data["username"])
        full_name = _name(data["full_name"])
        roles = _roles(data["roles"])
        sites = await self._sites(scope, data["site_ids"])
        user_id = str(uuid.uuid4())
        now = self.clock()
        code, statements = issue_code(
            self.db, user_id, ACTIVATION_CODE, ttl=self.activation_ttl, now=now
        )
        vault = vault_of(self.db)

        def store(conn: UnitConnection) -> None:
            if conn.run("SELECT 1 AS x FROM users WHERE username = :u", u=name):
                raise StaffConflictError(f"username {name!r} is taken", "username")
            key = person_key_in(conn.run, vault, user_id)
            sealed = seal_user_fields(vault, user_id, key, full_name=full_name, phone="")
            conn.run(
                "INSERT INTO users (id, username, password_hash, roles, full_name, phone,"
                " totp_secret, created_at) VALUES (:id, :u, :h, :roles, :full_name, :phone,"
                " NULL, :now)",
                id=user_id,
                u=name,
                h=PENDING_HASH,
                roles=",".join(sorted(roles)),
                full_name=sealed["full_name"],
                phone=sealed["phone"],
                now=now,
            )
            conn.run(
                "INSERT INTO staff (user_id, site_ids, created_at, created_by)"
                " VALUES (:id, :sites, :now, :by)",
                id=user_id,
                sites=encode_sites(sites),
                now=now,
                by=scope.user_id,
            )
            for sql, params in statements:
                conn.run(sql, **params)
            audit.sync_append(conn, _record(scope, CREATE, user_id, now))

        await self.db.unit(store)
        return {"id": user_id, "username": name, "activation_code": code}

    async def change(self, scope: Scope, user_id: str, body: object) -> dict[str, Any]:
        """Set ``roles``, ``site_ids`` and ``full_name`` (each optional); the account after."""
        data = _object(body, ("roles", "site_ids", "full_name"), required=False)
        row = await self._changeable_row(scope, user_id)
        if row["disabled_at"] is not None:
            raise StaffConflictError(f"staff member {user_id!r} is disabled")
        roles = _roles(data["roles"]) if "roles" in data else None
        touch_sites = "site_ids" in data
        sites = await self._sites(scope, data["site_ids"]) if touch_sites else None
        full_name = _name(data["full_name"]) if "full_name" in data else None
        now = self.clock()
        vault = vault_of(self.db)

        def store(conn: UnitConnection) -> None:
            new_roles = roles if roles is not None else _row_roles(row)
            new_sites = sites if touch_sites else decode_sites(row["site_ids"])
            stays_admin = Role.ADMIN.value in new_roles and new_sites is None
            if not stays_admin:
                _keep_an_admin(conn, self.db.dialect, user_id)
            if roles is not None:
                conn.run(
                    "UPDATE users SET roles = :r WHERE id = :id",
                    r=",".join(sorted(roles)),
                    id=user_id,
                )
            if full_name is not None:
                key = person_key_in(conn.run, vault, user_id)
                sealed = seal_user_fields(vault, user_id, key, full_name=full_name)
                conn.run(
                    "UPDATE users SET full_name = :f WHERE id = :id",
                    f=sealed["full_name"],
                    id=user_id,
                )
            if touch_sites:
                _ensure_staff_row(conn, user_id, now)
                conn.run(
                    "UPDATE staff SET site_ids = :s WHERE user_id = :id",
                    s=encode_sites(sites),
                    id=user_id,
                )
            audit.sync_append(conn, _record(scope, CHANGE, user_id, now))

        await self.db.unit(store)
        return await self.get(scope, user_id)

    async def disable(self, scope: Scope, user_id: str) -> bool:
        """Disable the account (False: it was already); its tokens stop at once everywhere."""
        row = await self._changeable_row(scope, user_id)
        if row["disabled_at"] is not None:
            return False
        now = self.clock()

        def store(conn: UnitConnection) -> None:
            _keep_an_admin(conn, self.db.dialect, user_id)
            _ensure_staff_row(conn, user_id, now)
            conn.run("UPDATE staff SET disabled_at = :t WHERE user_id = :id", t=now, id=user_id)
            conn.run(
                "UPDATE users SET password_hash = :h, totp_secret = NULL WHERE id = :id",
                h=DISABLED_HASH,
                id=user_id,
            )
            _end_sessions(conn, user_id, now)
            audit.sync_append(conn, _record(scope, DISABLE, user_id, now))

        await self.db.unit(store)
        await self.cut(user_id, now)
        return True

    async def reset_2fa(self, scope: Scope, user_id: str) -> dict[str, Any]:
        """Drop the account's second factor, password and sessions; a new activation code."""
        row = await self._changeable_row(scope, user_id)
        if row["disabled_at"] is not None:
            raise StaffConflictError(f"staff member {user_id!r} is disabled")
        now = self.clock()
        code, statements = issue_code(
            self.db, user_id, ACTIVATION_CODE, ttl=self.activation_ttl, now=now
        )

        def store(conn: UnitConnection) -> list[str]:
            conn.run(
                "UPDATE users SET password_hash = :h, totp_secret = NULL WHERE id = :id",
                h=PENDING_HASH,
                id=user_id,
            )
            conn.run("DELETE FROM user_recovery_codes WHERE user_id = :id", id=user_id)
            # The replay guard of the old seed's codes: moot with a new seed.
            conn.run("DELETE FROM user_totp_steps WHERE user_id = :id", id=user_id)
            families = _end_sessions(conn, user_id, now)
            for sql, params in statements:
                conn.run(sql, **params)
            audit.sync_append(conn, _record(scope, RESET_2FA, user_id, now))
            return families

        families = await self.db.unit(store)
        if self.end_grant is not None:
            for sid in families:
                await self.end_grant(sid, now + self.token_ttl)
        return {"id": user_id, "username": row["username"], "activation_code": code}

    # -- internals ------------------------------------------------------------------------

    async def _visible_row(self, scope: Scope, user_id: str) -> Row:
        row = await self.db.fetch_one(
            f"{_STAFF_ROW} WHERE u.id = :id AND ({_IS_STAFF})", id=user_id
        )
        if row is None or not scope.reaches(_place(row["site_ids"])):
            raise OutOfScopeError("staff member", user_id)
        return row

    async def _changeable_row(self, scope: Scope, user_id: str) -> Row:
        row = await self._visible_row(scope, user_id)
        if not scope.covers(decode_sites(row["site_ids"])):
            raise NotPermittedError("This staff member also works at sites that are not yours.")
        return row

    async def _sites(self, scope: Scope, raw: object) -> frozenset[str] | None:
        """The sites asked for: each must exist and be the caller's (404 otherwise)."""
        if raw is None:
            if not scope.organisation_wide:
                raise NotPermittedError("Only organisation-wide staff hand out the organisation.")
            return None
        if not isinstance(raw, list) or not raw or not all(isinstance(s, str) for s in raw):
            raise InvalidStaffFieldError("site_ids", "a non-empty list of site ids, or null")
        sites = frozenset(raw)
        clause, params = in_clause("s", sites)
        found = {
            str(r["id"])
            for r in await self.db.fetch_all(f"SELECT id FROM sites WHERE id IN {clause}", **params)
        }
        for site in sorted(sites):
            if site not in found or (scope.site_ids is not None and site not in scope.site_ids):
                raise OutOfScopeError("site", site)
        return sites


def _place(raw: object) -> Place:
    sites = decode_sites(raw)
    return ORGANISATION if sites is None else Place.at(sites)


def _row_roles(row: Row) -> frozenset[str]:
    return frozenset(r for r in str(row["roles"]).split(",") if r)


def _status(row: Row) -> str:
    if row["disabled_at"] is not None:
        return "disabled"
    return "pending" if row["password_hash"] == PENDING_HASH else "active"


def _json(row: Row, vault: Any) -> dict[str, Any]:
    user = User.from_row(row, vault)
    sites = decode_sites(row["site_ids"])
    return {
        "id": user.id,
        "username": user.username,
        "full_name": user.full_name,
        "roles": sorted(r for r in user.roles if r in STAFF_ROLES),
        "site_ids": None if sites is None else sorted(sites),
        "status": _status(row),
        "totp_enrolled": user.has_totp,
        "disabled_at": row["disabled_at"],
    }


def _object(body: object, names: Sequence[str], *, required: bool) -> Mapping[str, Any]:
    if not isinstance(body, Mapping):
        raise InvalidStaffFieldError("body", "expected a JSON object")
    for key in body:
        if key not in names:
            raise InvalidStaffFieldError(str(key), "unknown field")
    if required:
        for name in names:
            if name not in body:
                raise InvalidStaffFieldError(name, "required")
    return body


def _username(raw: object) -> str:
    if not isinstance(raw, str):
        raise InvalidStaffFieldError("username", "must be a string")
    name = normalize_username(raw)
    ok = 0 < len(name) <= MAX_USERNAME and all(c.isalnum() or c in "._-@" for c in name)
    if not ok:
        raise InvalidStaffFieldError(
            "username", f"1 to {MAX_USERNAME} letters, digits, '.', '_', '-' or '@'"
        )
    return name


def _name(raw: object) -> str:
    if not isinstance(raw, str) or not raw.strip() or len(raw) > MAX_NAME:
        raise InvalidStaffFieldError("full_name", f"1 to {MAX_NAME} characters")
    if any(ord(c) < 32 or ord(c) == 127 for c in raw):
        raise InvalidStaffFieldError("full_name", "no control characters")
    return raw.strip()


def _roles(raw: object) -> frozenset[str]:
    if not isinstance(raw, list) or not raw or not all(isinstance(r, str) for r in raw):
        raise InvalidStaffFieldError("roles", f"a non-empty list of {sorted(STAFF_ROLES)}")
    unknown = sorted(set(raw) - STAFF_ROLES)
    if unknown:
        raise InvalidStaffFieldError("roles", f"unknown role {unknown[0]!r}")
    return frozenset(raw)


def _ensure_staff_row(conn: UnitConnection, user_id: str, now: float) -> None:
    """A staff row for an account made before staff rows (organisation-wide)."""
    if not conn.run("SELECT 1 AS x FROM staff WHERE user_id = :id", id=user_id):
        conn.run(
            "INSERT INTO staff (user_id, site_ids, created_at) VALUES (:id, NULL, :now)",
            id=user_id,
            now=now,
        )


def _keep_an_admin(conn: UnitConnection, dialect: str, user_id: str) -> None:
    """Refuse (``StaffConflictError``) to make ``user_id`` stop being an active
    organisation-wide admin when no other is left."""
    if dialect == "postgresql":
        conn.run("SELECT pg_advisory_xact_lock(:k) AS locked", k=_ADMIN_LOCK)
    rows = conn.run(
        "SELECT u.id FROM users u LEFT JOIN staff s ON s.user_id = u.id"
        " WHERE (',' || u.roles || ',') LIKE '%,admin,%' AND s.site_ids IS NULL"
        " AND s.disabled_at IS NULL",
    )
    admins = {str(r["id"]) for r in rows}
    if user_id in admins and len(admins) == 1:
        raise StaffConflictError("the last organisation-wide administrator must stay one")


def _end_sessions(conn: UnitConnection, user_id: str, now: float) -> list[str]:
    """Revoke the account's refresh-token families and codes; the families revoked."""
    conn.run("UPDATE oauth_codes SET used = TRUE WHERE user_id = :u", u=user_id)
    conn.run(
        "UPDATE account_codes SET used_at = :t WHERE user_id = :u AND used_at IS NULL",
        t=now,
        u=user_id,
    )
    rows = conn.run(
        "UPDATE oauth_refresh_tokens SET revoked = TRUE WHERE user_id = :u AND revoked = FALSE"
        " RETURNING family_id",
        u=user_id,
    )
    return sorted({str(r["family_id"]) for r in rows})


def _record(scope: Scope, action: str, user_id: str, at: float) -> audit.AuditRecord:
    return audit.AuditRecord(
        at=at,
        actor=actor(scope.user_id),
        action=action,
        access_point_id=None,
        decision="granted",
        reason=f"id={user_id}",
        subject=user_id,
    )


def audit_within(scope: Scope) -> tuple[str, dict[str, str]] | None:
    """The audit entries a scope sees, as a condition for ``AuditLog.page(within=...)``:
    entries about an access point or a resident of its sites, and its own; None for
    organisation-wide staff (everything)."""
    if scope.site_ids is None:
        return None
    sites, params = in_clause("scope_site", scope.site_ids)
    condition = (
        f"access_point_id IN (SELECT id FROM access_points WHERE site_id IN {sites})"
        " OR subject IN (SELECT r.user_id FROM residencies r"
        " JOIN apartments a ON a.id = r.apartment_id JOIN buildings b ON b.id = a.building_id"
        f" WHERE b.site_id IN {sites}) OR actor = :scope_actor"
    )
    return condition, {**params, "scope_actor": actor(scope.user_id)}
