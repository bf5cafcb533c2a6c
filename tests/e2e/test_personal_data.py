"""The life of personal data against a running node, on SQLite and PostgreSQL: export → erase →
export 404 → ``run.py audit verify``; ``run.py retention run --as-of`` → old events gone, old
audit personal fields blank, the chain verifies; the node's daily run as of its clock; bad
input refused with nothing changed."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from propdev.storage.audit import AuditRecord
from tests.e2e.test_open_door import bearer
from tests.support.access import AccessNode, access_node
from tests.support.postgres import fresh_database
from tests.support.processes import Finished, cli_env, run_cli

pytestmark = pytest.mark.slow

DAY = 86400.0


@contextlib.contextmanager
def _store(kind: str) -> Iterator[dict[str, str]]:
    if kind == "sqlite":
        yield {}
        return
    with fresh_database() as url:
        yield {"PROPDEV_DATABASE_URL": url}


@pytest.fixture(params=["sqlite", "postgresql"])
async def site(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[AccessNode]:
    with _store(request.param) as env:
        async with access_node(tmp_path, **env) as running:
            yield running


def _env(site: AccessNode) -> dict[str, str]:
    settings = site.running.settings
    return cli_env(settings.data_dir, PROPDEV_DATABASE_URL=settings.database_url)


async def _cli(site: AccessNode, *args: str) -> Finished:
    return await run_cli(list(args), _env(site))


async def _open(site: AccessNode, username: str) -> None:
    node = site.running
    token = await node.token_for(username)
    door = node.resident(username)["access_point_ids"][0]
    async with node.http.post(
        f"{node.url}/api/v1/access-points/{door}/open", headers=bearer(token)
    ) as resp:
        assert resp.status == 200, await resp.text()


async def _login_entry(site: AccessNode, user_id: str, at: float, username: str) -> None:
    """An audit entry with personal fields about ``user_id``, as a login writes one."""
    await site.node.audit.append(
        AuditRecord(
            at=at,
            actor="anonymous",
            action="auth.login",
            access_point_id=None,
            decision="granted",
            subject=user_id,
            personal={"username": username, "address": "192.0.2.7"},
        )
    )


@pytest.fixture
async def operator(site: AccessNode) -> str:
    """The operator's access token (one login per test: a TOTP code is accepted once)."""
    return await site.running.token_for("operator")


async def _admin(site: AccessNode, operator: str, method: str, path: str) -> tuple[int, Any]:
    node = site.running
    async with node.http.request(method, f"{node.url}{path}", headers=bearer(operator)) as resp:
        body = await resp.read()
        return resp.status, json.loads(body) if body else None


async def test_export_then_erase_then_export_is_404_and_the_audit_chain_verifies(
    site: AccessNode, operator: str
) -> None:
    anna = site.running.resident("anna")
    await site.node.access.vehicles.register(anna["id"], "A123BC77")
    await _open(site, "anna")
    await _login_entry(site, anna["id"], time.time(), "anna")
    anna_token = await site.running.token_for("anna")

    status, document = await _admin(
        site, operator, "GET", f"/admin/api/v1/residents/{anna['id']}/export"
    )
    assert status == 200, document
    assert document["account"]["username"] == "anna"
    assert document["account"]["full_name"]
    assert [v["plate"] for v in document["vehicles"]] == ["A123BC77"]
    assert [e["type"] for e in document["events"]] == ["access.granted"]
    assert {"username": "anna", "address": "192.0.2.7"} in [
        a["personal"] for a in document["audit"]
    ]

    status, _ = await _admin(site, operator, "POST", f"/admin/api/v1/residents/{anna['id']}/erase")
    assert status == 204

    status, problem = await _admin(
        site, operator, "GET", f"/admin/api/v1/residents/{anna['id']}/export"
    )
    assert (status, problem["status"]) == (404, 404)
    status, problem = await _admin(
        site, operator, "POST", f"/admin/api/v1/residents/{anna['id']}/erase"
    )
    assert (status, problem["type"].rsplit("/", 1)[-1]) == (409, "conflict")
    async with site.running.http.get(
        f"{site.running.url}/api/v1/me", headers=bearer(anna_token)
    ) as resp:
        assert resp.status == 401
    status, entries = await _admin(site, operator, "GET", "/admin/api/v1/audit?limit=500")
    actions = [e["action"] for e in entries["entries"]]
    assert actions.count("resident.export") == 1 and actions.count("resident.erase") == 1

    verified = await _cli(site, "audit", "verify")
    assert verified.returncode == 0, str(verified)
    assert json.loads(verified.stdout)["ok"] is True


async def test_retention_run_as_of_deletes_old_events_blanks_old_personal_fields_and_verifies(
    site: AccessNode, operator: str
) -> None:
    boris = site.running.resident("boris")
    now = time.time()
    site.clock.set(now - 400 * DAY)  # a year and more ago
    await _open(site, "boris")
    await _login_entry(site, boris["id"], now - 1100 * DAY, "boris")
    site.clock.set(now)
    await _open(site, "boris")
    await _login_entry(site, boris["id"], now, "boris")
    as_of = dt.datetime.fromtimestamp(now, dt.UTC).isoformat()

    ran = await _cli(site, "retention", "run", "--as-of", as_of)

    assert ran.returncode == 0, str(ran)
    report = json.loads(ran.stdout)
    assert report["events_deleted"] == 1 and report["audit_personal_blanked"] == 1
    status, document = await _admin(
        site, operator, "GET", f"/admin/api/v1/residents/{boris['id']}/export"
    )
    assert status == 200
    assert [e["occurred_at"] >= now for e in document["events"]] == [True]
    logins = [a for a in document["audit"] if a["action"] == "auth.login"]
    made = [a["personal"] is None for a in logins if a["actor"] == "anonymous"]
    assert made == [True, False]
    # His real sign-ins (400 days ago and now) are audited too, within retention: kept.
    real = [a["personal"] for a in logins if a["actor"] == f"user:{boris['id']}"]
    assert len(real) == 2 and all(p is not None and p["username"] == "boris" for p in real)
    verified = await _cli(site, "audit", "verify")
    assert verified.returncode == 0, str(verified)

    # Runs only move forward; a malformed moment is refused; nothing changes either way.
    earlier = dt.datetime.fromtimestamp(now - DAY, dt.UTC).isoformat()
    for bad, words in ((earlier, "earlier than the last run"), ("last tuesday", "ISO-8601")):
        refused = await _cli(site, "retention", "run", "--as-of", bad)
        assert refused.returncode == 2, str(refused)
        assert words in refused.stderr
    status, entries = await _admin(site, operator, "GET", "/admin/api/v1/audit?limit=500")
    assert [e["action"] for e in entries["entries"]].count("retention.run") == 1

    # The node's daily run, as of its clock a day later: once, whichever node asks first.
    site.clock.set(now + DAY + 1)
    daily = await site.node.retention.tick()
    assert daily is not None and daily.trigger == "daily"
    assert await site.node.retention.tick() is None
    verified = await _cli(site, "audit", "verify")
    assert verified.returncode == 0, str(verified)
