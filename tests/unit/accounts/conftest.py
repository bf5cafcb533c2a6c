"""A migrated store (SQLite and the machine's PostgreSQL) with a vault, a resident and
``Accounts`` on a clock the test moves."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from propdev.accounts import Accounts, Message, ResetRequests
from propdev.config import Settings
from propdev.security import SignInThrottle, audit_opener, create_user, open_vault, vault_of
from propdev.storage import Database, migrate
from propdev.storage.audit import SUBJECT_KEY, personal_of
from tests.support.postgres import fresh_database

PASSWORD = "old-password-of-rita"
TOKEN_TTL = 300.0


@pytest.fixture(autouse=True)
def _cheap(cheap_passwords: None) -> Iterator[None]:
    yield


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Outbox:
    """A notifier that keeps what it was given."""

    def __init__(self) -> None:
        self.sent: list[Message] = []

    async def send(self, message: Message) -> None:
        self.sent.append(message)


@dataclass
class World:
    db: Database
    accounts: Accounts
    clock: FakeClock
    outbox: Outbox
    revoked: list[tuple[str, float]] = field(default_factory=list)
    rita: str = ""

    async def add_session(self, family: str, user_id: str | None = None) -> None:
        """A sign-in's refresh token (family ``family``), issued now."""
        now = self.clock()
        await self.db.execute(
            "INSERT INTO oauth_refresh_tokens (token_hash, family_id, client_id, user_id, scope,"
            " amr, issued_at, expires_at) VALUES (:h, :f, 'mobile-app', :u, 'api', '[\"pwd\"]',"
            " :t, :e)",
            h=f"h-{family}-{now}",
            f=family,
            u=user_id or self.rita,
            t=now,
            e=now + 3600,
        )

    async def live_families(self, user_id: str | None = None) -> set[str]:
        rows = await self.db.fetch_all(
            "SELECT family_id FROM oauth_refresh_tokens WHERE user_id = :u AND revoked = FALSE",
            u=user_id or self.rita,
        )
        return {str(r["family_id"]) for r in rows}

    async def audit(self, action: str) -> list[dict[str, object]]:
        """The entries of ``action`` that record a change (``granted``)."""
        return [
            dict(r)
            for r in await self.db.fetch_all(
                "SELECT actor, action, subject, reason FROM audit WHERE action = :a"
                " AND decision = 'granted' ORDER BY id",
                a=action,
            )
        ]

    async def refusals(self, action: str) -> list[tuple[object, ...]]:
        """(actor, subject, reason, personal) of the ``denied`` entries of ``action``."""
        rows = await self.db.fetch_all(
            f"SELECT actor, subject, reason, personal, hash_format, {SUBJECT_KEY} FROM audit"
            " WHERE action = :a AND decision = 'denied' ORDER BY id",
            a=action,
        )
        opener = audit_opener(vault_of(self.db))  # sealed (format 4): opened as a reader does
        return [(r["actor"], r["subject"], r["reason"], personal_of(r, opener)) for r in rows]


@pytest.fixture(params=["sqlite", "postgresql"])
async def world(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[World]:
    sqlite = contextlib.nullcontext(f"sqlite:///{tmp_path}/test.db")
    with fresh_database() if request.param == "postgresql" else sqlite as url:
        db = Database(url)
        try:
            await migrate(db)
            await open_vault(Settings.from_env({"PROPDEV_DATA_DIR": str(tmp_path)}), db)
            clock = FakeClock()
            outbox = Outbox()
            accounts = Accounts(
                db,
                notifier=outbox,
                throttle=SignInThrottle.local(200, clock=clock),
                requests=ResetRequests.local(200, clock=clock),
                token_ttl=TOKEN_TTL,
                clock=clock,
            )
            w = World(db, accounts, clock, outbox)

            async def published(sid: str, until: float) -> None:
                w.revoked.append((sid, until))

            accounts.on_grant_revoked = published
            w.rita = await create_user(
                db,
                username="rita",
                password=PASSWORD,
                roles=["resident"],
                full_name="Rita R",
                phone="+79990000001",
            )
            yield w
        finally:
            await db.close()
