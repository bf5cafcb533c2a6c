"""Guest passes: a code for a keypad (or the same code in a QR payload) with a validity window,
a number of uses and the access points it opens.

The code is shown once, at creation, and stored only as an HMAC under a node-shared key
(``code_index``), so neither the database nor its backups hold a usable code. Codes are unique
among passes that can still be used. Each presentation reads the pass from the store and takes
a use with one conditional ``UPDATE``, so a revocation on any node stops the code at once and
two presentations at the same moment cannot exceed ``max_uses``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import secrets
import time
import uuid
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import propdev.access.trail as trail
from propdev.access.errors import (
    InvalidFieldError,
    NotEntitledError,
    PassNotFoundError,
    TooManyPassesError,
)
from propdev.access.rules import AccessRules, Clock
from propdev.secret_file import create_once
from propdev.storage import Database, UnitConnection, audit, run

if TYPE_CHECKING:
    pass

CODE_DIGITS = 8
QR_PREFIX = "propdev:pass:"
MAX_USES = 100
MAX_ACCESS_POINTS = 20
MAX_VALIDITY = 30 * 24 * 3600
MAX_AHEAD = 90 * 24 * 3600
PAST_TOLERANCE = 300  # seconds a valid_from may lie in the past (clock skew of the app)
MAX_ACTIVE_PER_OWNER = 50
_CODE_ATTEMPTS = 20
_CREATE_LOCK = 74205  # PostgreSQL advisory lock serialising pass creation (code uniqueness)

# Why a presentation was refused (audit reasons).
UNKNOWN_CODE = "pass_unknown"
REVOKED = "pass_revoked"
EXPIRED = "pass_expired"
NOT_YET_VALID = "pass_not_yet_valid"
USED_UP = "pass_used_up"
WRONG_ACCESS_POINT = "pass_not_for_access_point"


def load_index_key(path: Path) -> bytes:
    """The code-index key at ``path`` (32 random bytes, 0600), created once if missing."""
    if not path.exists():
        create_once(path, (secrets.token_hex(32) + "\n").encode())
    key = bytes.fromhex(path.read_text().strip())
    if len(key) < 32:
        raise ValueError(f"{path}: expected at least 32 bytes of hex")
    return key


class PassCodes:
    """Making, normalising and indexing codes under one secret key."""

    def __init__(self, key: bytes, *, digits: int = CODE_DIGITS) -> None:
        self._key = key
        self.digits = digits

    def new(self) -> str:
        return "".join(secrets.choice("0123456789") for _ in range(self.digits))

    def normalise(self, presented: object) -> str | None:
        """The code in a keypad entry or QR payload, or None if it cannot be one."""
        if not isinstance(presented, str):
            return None
        code = presented.strip().removeprefix(QR_PREFIX).replace(" ", "")
        if len(code) != self.digits or not code.isascii() or not code.isdigit():
            return None
        return code

    def index(self, code: str) -> str:
        return hmac.new(self._key, b"pass-code:" + code.encode(), hashlib.sha256).hexdigest()

    @staticmethod
    def qr(code: str) -> str:
        return QR_PREFIX + code


def iso(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).isoformat().replace("+00:00", "Z")


def _instant(body: Mapping[str, Any], field: str) -> float:
    raw = body.get(field)
    if not isinstance(raw, str):
        raise InvalidFieldError(field, "expected an RFC 3339 date-time string")
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError:
        raise InvalidFieldError(field, "expected an RFC 3339 date-time string") from None
    if moment.tzinfo is None:
        raise InvalidFieldError(field, "must carry a time zone offset (e.g. Z or +03:00)")
    return moment.timestamp()


@dataclass(frozen=True, slots=True)
class PassRequest:
    """A validated request for a guest pass."""

    access_point_ids: tuple[str, ...]
    valid_from: float
    valid_until: float
    max_uses: int

    @classmethod
    def parse(cls, body: object, *, now: float) -> PassRequest:
        if not isinstance(body, dict):
            raise InvalidFieldError("body", "expected a JSON object")
        ids = body.get("access_point_ids")
        if (
            not isinstance(ids, list)
            or not ids
            or not all(isinstance(a, str) and 0 < len(a) <= 128 for a in ids)
        ):
            raise InvalidFieldError("access_point_ids", "expected a non-empty list of ids")
        unique = tuple(dict.fromkeys(ids))
        if len(unique) > MAX_ACCESS_POINTS:
            raise InvalidFieldError("access_point_ids", f"at most {MAX_ACCESS_POINTS} ids")
        valid_from = _instant(body, "valid_from")
        valid_until = _instant(body, "valid_until")
        if valid_from < now - PAST_TOLERANCE:
            raise InvalidFieldError("valid_from", "is in the past")
        if valid_from > now + MAX_AHEAD:
            raise InvalidFieldError("valid_from", f"at most {MAX_AHEAD // 86400} days ahead")
        if valid_until <= valid_from:
            raise InvalidFieldError("valid_until", "must be after valid_from")
        if valid_until - valid_from > MAX_VALIDITY:
            raise InvalidFieldError("valid_until", f"at most {MAX_VALIDITY // 86400} days")
        max_uses = body.get("max_uses")
        if isinstance(max_uses, bool) or not isinstance(max_uses, int):
            raise InvalidFieldError("max_uses", "expected an integer")
        if not 1 <= max_uses <= MAX_USES:
            raise InvalidFieldError("max_uses", f"must be between 1 and {MAX_USES}")
        return cls(unique, valid_from, valid_until, max_uses)


@dataclass(frozen=True, slots=True)
class GuestPass:
    id: str
    owner_id: str
    access_point_ids: tuple[str, ...]
    valid_from: float
    valid_until: float
    max_uses: int
    uses: int
    revoked_at: float | None
    created_at: float

    def refusal(self, now: float) -> str:
        """Why the pass cannot be used at ``now`` (empty when it can)."""
        if self.revoked_at is not None:
            return REVOKED
        if now >= self.valid_until:
            return EXPIRED
        if now < self.valid_from:
            return NOT_YET_VALID
        if self.uses >= self.max_uses:
            return USED_UP
        return ""

    def status(self, now: float) -> str:
        return {
            "": "active",
            REVOKED: "revoked",
            EXPIRED: "expired",
            NOT_YET_VALID: "scheduled",
            USED_UP: "used_up",
        }[self.refusal(now)]

    def to_json(self, now: float) -> dict[str, Any]:
        return {
            "id": self.id,
            "access_point_ids": list(self.access_point_ids),
            "valid_from": iso(self.valid_from),
            "valid_until": iso(self.valid_until),
            "max_uses": self.max_uses,
            "uses": self.uses,
            "status": self.status(now),
            "created_at": iso(self.created_at),
            "revoked_at": iso(self.revoked_at) if self.revoked_at is not None else None,
        }


@dataclass(frozen=True, slots=True)
class Claim:
    """The outcome of presenting a code: the pass (if the code is known) and whether a use was
    taken; ``reason`` says why not."""

    guest_pass: GuestPass | None
    granted: bool
    reason: str = ""


_COLUMNS = "id, owner_id, valid_from, valid_until, max_uses, uses, revoked_at, created_at"


class GuestPasses:
    """Issuing, listing, revoking and using guest passes."""

    def __init__(
        self, db: Database, rules: AccessRules, codes: PassCodes, *, clock: Clock = time.time
    ) -> None:
        self.db = db
        self.rules = rules
        self.codes = codes
        self.clock = clock

    async def _access_points(self, pass_ids: list[str]) -> dict[str, tuple[str, ...]]:
        if not pass_ids:
            return {}
        found: dict[str, list[str]] = {p: [] for p in pass_ids}
        params = {f"p{i}": p for i, p in enumerate(pass_ids)}
        rows = await self.db.fetch_all(
            "SELECT pass_id, access_point_id FROM guest_pass_access_points "
            f"WHERE pass_id IN ({', '.join(':' + k for k in params)}) "
            "ORDER BY pass_id, access_point_id",
            **params,
        )
        for r in rows:
            found[r["pass_id"]].append(r["access_point_id"])
        return {k: tuple(v) for k, v in found.items()}

    def _pass(self, row: Mapping[str, Any], access_points: tuple[str, ...]) -> GuestPass:
        return GuestPass(
            id=row["id"],
            owner_id=row["owner_id"],
            access_point_ids=access_points,
            valid_from=row["valid_from"],
            valid_until=row["valid_until"],
            max_uses=int(row["max_uses"]),
            uses=int(row["uses"]),
            revoked_at=row["revoked_at"],
            created_at=row["created_at"],
        )

    async def create(
        self, owner_id: str, request: PassRequest, *, actor: str | None = None
    ) -> tuple[GuestPass, str]:
        """Issue a pass; return it and its code (the only time the code is known).

        Audited (``guest_pass.create``, by ``actor``, the owner by default) in the transaction
        that stores the pass."""
        missing = await self.rules.without_right(owner_id, request.access_point_ids)
        now = self.clock()
        who = actor or trail.resident(owner_id)
        if missing:
            await self._refused(who, "not_entitled", owner_id, now, access_point_ids=missing)
            raise NotEntitledError(missing)
        pass_id = str(uuid.uuid4())
        record = trail.change(
            who,
            trail.PASS_CREATE,
            at=now,
            pass_id=pass_id,
            owner_id=owner_id,
            access_point_ids=",".join(sorted(request.access_point_ids)),
            valid_from=iso(request.valid_from),
            valid_until=iso(request.valid_until),
            max_uses=request.max_uses,
        )

        def store(conn: UnitConnection) -> str:
            if conn.dialect == "postgresql":
                conn.run("SELECT pg_advisory_xact_lock(:k)", k=_CREATE_LOCK)
            active = conn.run(
                "SELECT COUNT(*) AS n FROM guest_passes WHERE owner_id = :o "
                "AND revoked_at IS NULL AND valid_until > :now AND uses < max_uses",
                o=owner_id,
                now=now,
            )
            if int(active[0]["n"]) >= MAX_ACTIVE_PER_OWNER:
                raise TooManyPassesError(f"at most {MAX_ACTIVE_PER_OWNER} active passes")
            code = self._unused_code(conn, now)
            conn.run(
                "INSERT INTO guest_passes (id, owner_id, code_index, valid_from, valid_until, "
                "max_uses, uses, created_at) VALUES (:id, :o, :c, :f, :u, :m, 0, :t)",
                id=pass_id,
                o=owner_id,
                c=self.codes.index(code),
                f=request.valid_from,
                u=request.valid_until,
                m=request.max_uses,
                t=now,
            )
            for ap in request.access_point_ids:
                conn.run(
                    "INSERT INTO guest_pass_access_points (pass_id, access_point_id) "
                    "VALUES (:p, :a)",
                    p=pass_id,
                    a=ap,
                )
            audit.sync_append(conn, record)
            return code

        try:
            code = await self.db.unit(store)
        except TooManyPassesError:
            await self._refused(who, "too_many_passes", owner_id, now)
            raise
        issued = GuestPass(
            pass_id,
            owner_id,
            tuple(sorted(request.access_point_ids)),
            request.valid_from,
            request.valid_until,
            request.max_uses,
            0,
            None,
            now,
        )
        return issued, code

    async def _refused(
        self,
        actor: str,
        code: str,
        owner_id: str,
        at: float,
        access_point_ids: Sequence[str] = (),
    ) -> None:
        """The ``denied`` entry of a refused pass, before the refusal is answered."""
        record = trail.refused(
            actor,
            trail.PASS_CREATE,
            code,
            at=at,
            owner_id=owner_id,
            **(
                {"access_point_ids": ",".join(sorted(access_point_ids))} if access_point_ids else {}
            ),
        )
        await self.db.unit(lambda conn: audit.sync_append(conn, record))

    def _unused_code(self, conn: UnitConnection, now: float) -> str:
        for _ in range(_CODE_ATTEMPTS):
            code = self.codes.new()
            clash = conn.run(
                "SELECT 1 AS x FROM guest_passes WHERE code_index = :c AND revoked_at IS NULL "
                "AND valid_until > :now AND uses < max_uses",
                c=self.codes.index(code),
                now=now,
            )
            if not clash:
                return code
        raise RuntimeError("no unused pass code found; the code space is exhausted")

    async def of(self, owner_id: str) -> list[GuestPass]:
        rows = await self.db.fetch_all(
            f"SELECT {_COLUMNS} FROM guest_passes WHERE owner_id = :o ORDER BY created_at, id",
            o=owner_id,
        )
        aps = await self._access_points([r["id"] for r in rows])
        return [self._pass(r, aps[r["id"]]) for r in rows]

    async def get(self, owner_id: str | None, pass_id: str) -> GuestPass:
        """The pass ``pass_id`` of ``owner_id`` (of anyone when None, for operators)."""
        mine = " AND owner_id = :o" if owner_id is not None else ""
        row = await self.db.fetch_one(
            f"SELECT {_COLUMNS} FROM guest_passes WHERE id = :id{mine}",
            id=pass_id,
            o=owner_id,
        )
        if row is None:
            raise PassNotFoundError(pass_id)
        aps = await self._access_points([pass_id])
        return self._pass(row, aps[pass_id])

    async def find(
        self,
        *,
        owner_id: str | None = None,
        active: bool | None = None,
        limit: int = 200,
        sites: Collection[str] | None = None,
    ) -> list[GuestPass]:
        """Passes of anyone (operators), newest first; ``active``: only those that can still
        be used (not revoked, expired or used up; scheduled ones count), or only the others;
        ``sites``: only those opening a door of one of these sites."""
        where = ["1 = 1"]
        at: dict[str, str] = {}
        if sites is not None:
            at = {f"site{i}": s for i, s in enumerate(sorted(sites))}
            listed = ", ".join(":" + k for k in at) or "NULL"
            where.append(
                "id IN (SELECT g.pass_id FROM guest_pass_access_points g JOIN access_points ap"
                f" ON ap.id = g.access_point_id WHERE ap.site_id IN ({listed}))"
            )
        if owner_id is not None:
            where.append("owner_id = :o")
        usable = "revoked_at IS NULL AND valid_until > :now AND uses < max_uses"
        if active is True:
            where.append(usable)
        elif active is False:
            where.append(f"NOT ({usable})")
        rows = await self.db.fetch_all(
            f"SELECT {_COLUMNS} FROM guest_passes WHERE {' AND '.join(where)} "
            "ORDER BY created_at DESC, id LIMIT :limit",
            o=owner_id,
            now=self.clock(),
            limit=limit,
            **at,
        )
        aps = await self._access_points([r["id"] for r in rows])
        return [self._pass(r, aps[r["id"]]) for r in rows]

    async def revoke(
        self, owner_id: str | None, pass_id: str, *, actor: str | None = None
    ) -> GuestPass:
        """Stop the pass now (idempotent); another resident's pass is not found.

        ``owner_id=None`` revokes anyone's pass (operators, who name themselves as ``actor``).
        The revocation is audited (``guest_pass.revoke``, by ``actor``, the owner by default)
        in its transaction, only when it changed the pass."""
        if actor is None and owner_id is None:
            raise ValueError("revoking anyone's pass needs an actor")
        who = actor or trail.resident(str(owner_id))
        mine = " AND owner_id = :o" if owner_id is not None else ""
        now = self.clock()

        def store(conn: UnitConnection) -> None:
            revoked = conn.run(
                f"UPDATE guest_passes SET revoked_at = :t WHERE id = :id{mine} "
                "AND revoked_at IS NULL RETURNING owner_id",
                t=now,
                id=pass_id,
                o=owner_id,
            )
            if revoked:
                audit.sync_append(
                    conn,
                    trail.change(
                        who,
                        trail.PASS_REVOKE,
                        at=now,
                        pass_id=pass_id,
                        owner_id=revoked[0]["owner_id"],
                    ),
                )

        await self.db.unit(store)
        return await self.get(owner_id, pass_id)

    async def claim(self, presented: object, access_point_id: str, *, at: float) -> Claim:
        """Take one use of the pass whose code was presented at ``access_point_id``."""
        code = self.codes.normalise(presented)
        if code is None:
            return Claim(None, False, UNKNOWN_CODE)
        rows = await self.db.fetch_all(
            f"SELECT {_COLUMNS} FROM guest_passes WHERE code_index = :c "
            "ORDER BY created_at DESC, id",
            c=self.codes.index(code),
        )
        if not rows:
            return Claim(None, False, UNKNOWN_CODE)
        aps = await self._access_points([r["id"] for r in rows])
        passes = [self._pass(r, aps[r["id"]]) for r in rows]
        # Codes are unique among usable passes; older, spent passes may share the code.
        guest_pass = next((p for p in passes if not p.refusal(at)), passes[0])
        reason = guest_pass.refusal(at)
        if not reason and access_point_id not in guest_pass.access_point_ids:
            reason = WRONG_ACCESS_POINT
        if not reason:
            # A pass never opens more than its owner may, at the moment it is used.
            owner = await self.rules.decide(guest_pass.owner_id, access_point_id, at=at)
            reason = "" if owner.allowed else f"owner_{owner.reason}"
        if reason:
            return Claim(guest_pass, False, reason)
        async with self.db.transaction() as conn:
            taken = await run(
                conn,
                "UPDATE guest_passes SET uses = uses + 1 WHERE id = :id AND revoked_at IS NULL "
                "AND uses < max_uses AND valid_from <= :now AND valid_until > :now "
                "RETURNING uses",
                id=guest_pass.id,
                now=at,
            )
        if not taken:  # revoked or used up by a presentation elsewhere just now
            fresh = await self.get(guest_pass.owner_id, guest_pass.id)
            return Claim(fresh, False, fresh.refusal(at) or USED_UP)
        return Claim(dataclasses.replace(guest_pass, uses=int(taken[0]["uses"])), True)


_GIVE_BACK = "UPDATE guest_passes SET uses = uses - 1 WHERE id = :id AND uses > 0"


def sync_give_back(conn: UnitConnection, pass_id: str) -> None:
    """Return a use taken by a presentation the device did not carry out (in a unit)."""
    conn.run(_GIVE_BACK, id=pass_id)
