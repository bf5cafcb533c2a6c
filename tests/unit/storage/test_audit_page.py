"""``AuditLog.page``'s filters, on SQLite and PostgreSQL: ``action`` a literal prefix (``_`` and
``%`` are characters, not wildcards), ``actor`` exact, each combinable with the others and with
paging; ``personal`` comes back as the mapping stored."""

from __future__ import annotations

from propdev.storage import Database
from propdev.storage.audit import AuditLog, AuditRecord


def entry(action: str, actor: str, ap: str | None = None, **personal: str) -> AuditRecord:
    return AuditRecord(
        at=1000.0,
        actor=actor,
        action=action,
        access_point_id=ap,
        decision="granted",
        subject="u-1",
        personal=personal or None,
    )


async def test_filters_combine_and_a_prefix_is_literal(db: Database) -> None:
    log = AuditLog(db)
    for record in (
        entry("auth.login", "user:u-1", username="Anna", address="192.0.2.1"),
        entry("authXlogin", "user:u-1"),
        entry("guest_pass.create", "user:u-1"),
        entry("guestXpass.create", "user:u-1"),
        entry("open", "user:u-1", "ap-1"),
        entry("open", "user:u-10", "ap-1"),
        entry("open", "user:u-1", "ap-2"),
        entry("auth.revoke", "operator:o-1"),
    ):
        await log.append(record)

    def actions(rows: list[dict[str, object]]) -> list[object]:
        return [r["action"] for r in rows]

    assert actions(await log.page(action="auth.")) == ["auth.login", "auth.revoke"]
    assert actions(await log.page(action="guest_")) == ["guest_pass.create"]
    assert await log.page(action="%") == []
    opens = await log.page(action="open", actor="user:u-1")
    assert [r["access_point_id"] for r in opens] == ["ap-1", "ap-2"]
    assert len(await log.page(action="op", actor="user:u-1", access_point_id="ap-1")) == 1
    first, *_ = await log.page(action="auth.", actor="user:u-1")
    assert first["personal"] == {"username": "Anna", "address": "192.0.2.1"}
    assert first["subject"] == "u-1"
    later = await log.page(action="auth.", after=int(first["id"]), limit=5)
    assert actions(later) == ["auth.revoke"]
    assert (await log.page(action="auth.", limit=1))[0]["personal"] is not None
    assert all(r["personal"] is None for r in await log.page(action="open"))
