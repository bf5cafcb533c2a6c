"""Guest passes and vehicles changed over HTTPS are in the audit chain: who did it (resident or
operator, by subject) and which object (by id, never a code or a plate); the chain verifies."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from propdev.storage import Database
from propdev.storage.audit import AuditLog
from tests.e2e.conftest import RunningNode

DOOR = "ap-a-entrance"  # anna's
PLATE = "A777AA77"
CHANGES = ("guest_pass.", "vehicle.")


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def call(
    r: RunningNode, method: str, path: str, token: str, body: Any = None, expect: int = 200
) -> Any:
    async with r.http.request(method, f"{r.url}{path}", json=body, headers=bearer(token)) as resp:
        assert resp.status == expect, await resp.text()
        return await resp.json() if resp.content_type.endswith("json") else None


async def changes(r: RunningNode, operator: str) -> list[dict[str, Any]]:
    page = await call(r, "GET", "/admin/api/v1/audit?limit=1000", operator)
    return [e for e in page["entries"] if e["action"].startswith(CHANGES)]


async def change_everything(r: RunningNode) -> tuple[str, str, list[dict[str, Any]]]:
    """Anna issues two passes, revokes one, an operator revokes the other; she registers a car,
    registers it again (no change) and removes it. Returns (pass code, her id, the entries)."""
    anna = await r.token_for("anna")
    operator = await r.token_for("operator")
    now = datetime.now(UTC)
    body = {
        "access_point_ids": [DOOR],
        "valid_from": now.isoformat(),
        "valid_until": (now + timedelta(hours=1)).isoformat(),
        "max_uses": 2,
    }
    first = await call(r, "POST", "/api/v1/guest-passes", anna, body, expect=201)
    second = await call(r, "POST", "/api/v1/guest-passes", anna, body, expect=201)
    await call(r, "DELETE", f"/api/v1/guest-passes/{first['id']}", anna, expect=204)
    await call(r, "DELETE", f"/api/v1/guest-passes/{first['id']}", anna, expect=204)  # no-op
    await call(r, "DELETE", f"/admin/api/v1/guest-passes/{second['id']}", operator, expect=204)
    car = await call(r, "POST", "/api/v1/vehicles", anna, {"plate": "a 777 aa 77"}, expect=201)
    await call(r, "POST", "/api/v1/vehicles", anna, {"plate": PLATE}, expect=200)  # no change
    await call(r, "DELETE", f"/api/v1/vehicles/{car['id']}", anna, expect=204)
    await call(r, "DELETE", f"/api/v1/vehicles/{car['id']}", anna, expect=404)

    entries = await changes(r, operator)
    anna_id = str((await call(r, "GET", "/api/v1/me", anna))["id"])
    operator_id = str((await call(r, "GET", "/api/v1/me", operator))["id"])
    assert [(e["action"], e["actor"]) for e in entries] == [
        ("guest_pass.create", f"user:{anna_id}"),
        ("guest_pass.create", f"user:{anna_id}"),
        ("guest_pass.revoke", f"user:{anna_id}"),
        ("guest_pass.revoke", f"operator:{operator_id}"),
        ("vehicle.register", f"user:{anna_id}"),
        ("vehicle.remove", f"user:{anna_id}"),
    ]
    assert [e["reason"].split()[0] for e in entries] == [
        f"pass_id={first['id']}",
        f"pass_id={second['id']}",
        f"pass_id={first['id']}",
        f"pass_id={second['id']}",
        f"vehicle_id={car['id']}",
        f"vehicle_id={car['id']}",
    ]
    text = repr(entries)
    assert first["code"] not in text and second["code"] not in text
    assert PLATE not in text and "A777" not in text
    return first["code"], anna_id, entries


async def verified(r: RunningNode) -> tuple[bool, int, int | None]:
    db = Database(r.settings.resolved().database_url)
    try:
        return await AuditLog(db).verify()
    finally:
        await db.close()


async def test_pass_and_vehicle_changes_are_audited_and_the_chain_verifies(
    node: RunningNode,
) -> None:
    await change_everything(node)
    ok, checked, bad = await verified(node)
    assert (ok, bad) == (True, None) and checked >= 6


async def test_on_postgresql_too(pg_node: RunningNode) -> None:
    _, _, entries = await change_everything(pg_node)
    assert len({e["id"] for e in entries}) == 6
    ok, checked, bad = await verified(pg_node)
    assert (ok, bad) == (True, None) and checked >= 6
