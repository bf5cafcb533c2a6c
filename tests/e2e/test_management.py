"""Device and resident management end to end: an operator builds the estate, imports access
points from CSV, syncs them from the simulator partner, invites a resident who logs in and
opens a door, and moves them out; every change is in the audit log; residents are refused.

Our management rules, not a vendor's behaviour: the embedded simulator is the vendor (its
device list for the sync); codes and plates come over ``POST /partner/v1/events``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.support.access import AccessNode, access_node
from tests.support.oauth_client import login

API = "/admin/api/v1"
DOOR = "ap-a-entrance"
BARRIER = "ap-parking"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
async def site(tmp_path: Path) -> AsyncIterator[AccessNode]:
    async with access_node(tmp_path) as running:
        yield running


class Operator:
    """The operator's calls, with one token (one TOTP login per test)."""

    def __init__(self, site: AccessNode, token: str) -> None:
        self.site = site
        self.r = site.running
        self.headers = bearer(token)
        self.id = str(self.r.credentials["operator"]["id"])

    async def call(
        self, method: str, path: str, json: Any = None, **kwargs: Any
    ) -> tuple[int, Any]:
        headers = {**self.headers, **kwargs.pop("headers", {})}
        async with self.r.http.request(
            method, f"{self.r.url}{path}", json=json, headers=headers, **kwargs
        ) as resp:
            if resp.status == 204:
                return 204, None
            ctype = resp.headers.get("Content-Type", "")
            if method != "DELETE" and resp.status >= 400:
                assert ctype.startswith("application/problem+json"), (resp.status, ctype)
            return resp.status, await resp.json(content_type=None)

    async def audit(self) -> list[dict[str, Any]]:
        """The entries this operator caused, but their own sign-in."""
        return [
            e
            for e in await self.audit_of()
            if e["actor"] == f"operator:{self.id}" and e["action"] != "auth.login"
        ]

    async def audit_of(self, access_point_id: str | None = None) -> list[dict[str, Any]]:
        params = {
            "limit": "1000",
            **({"access_point_id": access_point_id} if access_point_id else {}),
        }
        status, page = await self.call("GET", f"{API}/audit", params=params)
        assert status == 200
        return list(page["entries"])

    async def sim(self, method: str, path: str, json: Any = None) -> int:
        url = f"{self.r.credentials['partner_sim_url']}/sim/v1{path}"
        async with self.r.http.request(method, url, json=json) as resp:
            return resp.status


@pytest.fixture
async def operator(site: AccessNode) -> Operator:
    return Operator(site, await site.running.token_for("operator"))


async def test_an_operator_creates_a_building_and_registers_a_device_with_validation(
    operator: Operator,
) -> None:
    status, building = await operator.call(
        "POST", f"{API}/buildings", {"id": "bld-c", "site_id": "site-riverside", "name": "C"}
    )
    assert (status, building["site_id"]) == (201, "site-riverside")
    status, problem = await operator.call(
        "POST", f"{API}/buildings", {"id": "bld-c", "site_id": "site-riverside", "name": "C"}
    )
    assert (status, problem["field"]) == (409, "id")

    door = {
        "id": "ap-c-entrance",
        "name": "Building C, entrance",
        "kind": "door",
        "building_id": "bld-c",
        "partner": "simulator",
        "device_id": "sim-door-c",
    }
    assert await operator.sim("POST", "/devices", {"device_id": "sim-door-c"}) == 201
    status, point = await operator.call("POST", f"{API}/access-points", door)
    assert status == 201, point
    assert (point["site_id"], point["gone_at"]) == ("site-riverside", None)

    # Validation names the field; a device of another access point is a conflict.
    for change, expected in [
        ({"kind": "window"}, (422, "kind")),
        ({"building_id": "bld-nowhere"}, (422, "building_id")),
        ({"partner": "nobody"}, (422, "partner")),
        ({"device_id": "sim-door-1"}, (409, "device_id")),
        ({"id": "ap-c-entrance"}, (409, "id")),
        ({"colour": "red"}, (422, "colour")),
    ]:
        status, problem = await operator.call(
            "POST", f"{API}/access-points", {**door, "id": "ap-c-other", **change}
        )
        assert (status, problem.get("field")) == expected, problem
    status, problem = await operator.call(
        "PATCH", f"{API}/access-points/ap-c-entrance", {"device_id": "sim-door-2"}
    )
    assert (status, problem["field"]) == (409, "device_id")
    status, _ = await operator.call("GET", f"{API}/access-points/ap-nowhere")
    assert status == 404

    status, renamed = await operator.call(
        "PATCH", f"{API}/access-points/ap-c-entrance", {"name": "C main door"}
    )
    assert (status, renamed["name"], renamed["device_id"]) == (200, "C main door", "sim-door-c")
    status, _ = await operator.call("DELETE", f"{API}/buildings/bld-c")
    assert status == 409  # it still has an access point

    # Anna may open the new door once granted; deleting the door ends her right.
    anna = operator.r.resident("anna")
    status, _ = await operator.call("PUT", f"{API}/rights/{anna['id']}/ap-c-entrance")
    assert status == 201
    anna_token = await operator.r.token_for("anna")
    async with operator.r.http.post(
        f"{operator.r.url}/api/v1/access-points/ap-c-entrance/open", headers=bearer(anna_token)
    ) as resp:
        assert resp.status == 200, await resp.text()
    status, report = await operator.call("DELETE", f"{API}/access-points/ap-c-entrance")
    assert (status, report["rights_ended"]) == (200, 1)
    status, _ = await operator.call("DELETE", f"{API}/buildings/bld-c")
    assert status == 204

    actions = [(e["action"], e["access_point_id"]) for e in await operator.audit()]
    assert actions == [
        ("building.create", None),
        ("access_point.create", "ap-c-entrance"),
        ("access_point.update", "ap-c-entrance"),
        ("right.grant", "ap-c-entrance"),
        ("access_point.delete", "ap-c-entrance"),
        ("building.delete", None),
    ]


CSV = """access_point_id,name,kind,building_id,partner,device_id
ap-b-side,Building B side door,door,bld-b,simulator,sim-door-7
ap-a-entrance,Building A main door,door,bld-a,simulator,sim-door-1
ap-b-entrance,"Building B, main entrance",door,bld-b,simulator,sim-door-3
ap-bad,Bad one,window,bld-b,simulator,sim-door-8
ap-thief,Takes a door,door,bld-b,simulator,sim-door-4
ap-short,too,few
"""


async def test_a_csv_import_reports_each_line_and_a_bad_line_does_not_block_the_others(
    operator: Operator,
) -> None:
    path = f"{API}/access-points/import"
    headers = {**operator.headers, "Content-Type": "text/csv"}

    async def post(params: dict[str, str]) -> tuple[int, dict[str, Any]]:
        async with operator.r.http.post(
            f"{operator.r.url}{path}", data=CSV.encode(), headers=headers, params=params
        ) as resp:
            return resp.status, await resp.json()

    status, preview = await post({"dry_run": "true"})
    assert status == 200, preview
    status, real = await post({})
    assert status == 200, real
    assert preview["lines"] == real["lines"] and (preview["dry_run"], real["dry_run"]) == (
        True,
        False,
    )
    outcomes = {line["line"]: line for line in real["lines"]}
    assert [outcomes[n]["outcome"] for n in range(2, 8)] == [
        "added",
        "changed",
        "unchanged",
        "rejected",
        "rejected",
        "rejected",
    ]
    assert outcomes[3]["fields"] == ["name"]
    assert outcomes[5]["reason"].startswith("kind:")
    assert "ap-b-courtyard" in outcomes[6]["reason"]  # sim-door-4 is that door's device
    assert outcomes[7]["reason"] == "expected 6 fields, found 3"
    assert real["summary"] == {"added": 1, "changed": 1, "unchanged": 1, "rejected": 3}

    status, points = await operator.call("GET", f"{API}/access-points")
    by_id = {p["id"]: p for p in points}
    assert by_id["ap-b-side"]["device_id"] == "sim-door-7"
    assert by_id["ap-a-entrance"]["name"] == "Building A main door"
    assert "ap-bad" not in by_id and "ap-thief" not in by_id

    # Multipart works too; the second run changes nothing.
    form = aiohttp.FormData()
    form.add_field("file", CSV.encode(), filename="points.csv", content_type="text/csv")
    async with operator.r.http.post(
        f"{operator.r.url}{path}", data=form, headers=operator.headers
    ) as resp:
        again = await resp.json()
    assert again["summary"] == {"added": 0, "changed": 0, "unchanged": 3, "rejected": 3}

    status, problem = await operator.call("POST", path, data=b"id,name\nx,y\n", headers={**headers})
    assert (status, problem["field"]) == (422, "header")
    status, _ = await operator.call("POST", path, json={"not": "csv"})
    assert status == 415

    actions = [(e["action"], e["access_point_id"]) for e in await operator.audit()]
    assert actions == [
        ("access_point.import", "ap-b-side"),
        ("access_point.import", "ap-a-entrance"),
        ("access_points.import", None),
    ]


async def test_a_partner_sync_previews_applies_and_reports_a_removed_device_as_gone(
    operator: Operator,
) -> None:
    path = f"{API}/partners/simulator/sync"
    assert await operator.sim("POST", "/devices", {"device_id": "sim-door-9", "name": "D9"}) == 201

    status, preview = await operator.call("POST", path, {"apply": False})
    assert status == 200, preview
    assert [(a["access_point_id"], a["device_id"]) for a in preview["added"]] == [
        ("simulator-sim-door-9", "sim-door-9")
    ]
    assert preview["changed"] == [] and preview["gone"] == []
    assert len(preview["unchanged"]) == 5
    status, _ = await operator.call("GET", f"{API}/access-points/simulator-sim-door-9")
    assert status == 404  # a preview changes nothing

    status, problem = await operator.call("POST", path, {"apply": True})
    assert (status, problem["field"]) == (422, "building_id")
    status, applied = await operator.call("POST", path, {"apply": True, "building_id": "bld-b"})
    assert (status, applied["added"]) == (200, preview["added"])
    status, point = await operator.call("GET", f"{API}/access-points/simulator-sim-door-9")
    assert (status, point["name"], point["building_id"]) == (200, "D9", "bld-b")

    assert await operator.sim("POST", "/reset") == 204  # back to the catalogue: door 9 is gone
    status, preview = await operator.call("POST", path, {"apply": False})
    assert preview["gone"] == [
        {"access_point_id": "simulator-sim-door-9", "device_id": "sim-door-9"}
    ]
    status, applied = await operator.call("POST", path, {"apply": True})
    assert status == 200 and applied["gone"] == preview["gone"]
    status, point = await operator.call("GET", f"{API}/access-points/simulator-sim-door-9")
    assert status == 200 and point["gone_at"] is not None  # marked, not deleted
    status, again = await operator.call("POST", path, {"apply": False})
    assert again["gone"] == [] and "simulator-sim-door-9" in again["unchanged"]

    status, _ = await operator.call("POST", f"{API}/partners/nobody/sync", {"apply": False})
    assert status == 404
    actions = [(e["action"], e["access_point_id"]) for e in await operator.audit()]
    assert actions == [
        ("access_point.sync_add", "simulator-sim-door-9"),
        ("partner.sync", None),
        ("access_point.sync_gone", "simulator-sim-door-9"),
        ("partner.sync", None),
    ]


async def _refresh(site: AccessNode, token: str) -> tuple[int, dict[str, Any]]:
    r = site.running
    async with r.http.post(
        f"{r.url}/oauth/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": token,
            "client_id": r.credentials["mobile_client_id"],
        },
    ) as resp:
        return resp.status, await resp.json()


async def test_an_invited_resident_logs_in_opens_with_a_granted_right_and_moving_out_ends_it_all(
    operator: Operator,
) -> None:
    site, r = operator.site, operator.r
    status, apartment = await operator.call(
        "POST", f"{API}/apartments", {"building_id": "bld-a", "number": "42"}
    )
    assert (status, apartment["id"], apartment["residents"]) == (201, "bld-a-42", 0)
    invitation = {
        "username": "dora",
        "full_name": "Dora Kuznetsova",
        "phone": "+79990000044",
        "apartment_id": "bld-a-42",
    }
    status, invited = await operator.call("POST", f"{API}/residents", invitation)
    assert status == 201, invited
    dora = invited["resident"]
    assert (dora["full_name"], dora["phone"], dora["status"]) == (
        "Dora Kuznetsova",
        "+79990000044",
        "active",
    )
    status, problem = await operator.call("POST", f"{API}/residents", invitation)
    assert (status, problem["field"]) == (409, "username")

    tokens = await login(
        r.http,
        r.url,
        client_id=r.credentials["mobile_client_id"],
        redirect_uri=r.credentials["redirect_uri"],
        username="dora",
        password=invited["temporary_password"],
    )
    token = tokens["access_token"]
    open_url = f"{r.url}/api/v1/access-points/{DOOR}/open"
    async with r.http.post(open_url, headers=bearer(token)) as resp:
        assert resp.status == 403  # no right yet

    bad = {"schedule": {"windows": [{"days": ["mon"], "from": "25:00", "until": "22:00"}]}}
    status, problem = await operator.call("PUT", f"{API}/rights/{dora['id']}/{DOOR}", bad)
    assert (status, problem["field"]) == (422, "schedule.windows[0].from")
    for point in (DOOR, BARRIER):
        status, right = await operator.call("PUT", f"{API}/rights/{dora['id']}/{point}", {})
        assert (status, right["schedule"]) == (201, None)
    async with r.http.post(open_url, headers=bearer(token)) as resp:
        assert resp.status == 200, await resp.text()

    # Her guest pass and her car work while she lives here.
    now = datetime.now(UTC)
    async with r.http.post(
        f"{r.url}/api/v1/guest-passes",
        json={
            "access_point_ids": [DOOR],
            "valid_from": now.isoformat(),
            "valid_until": (now + timedelta(hours=2)).isoformat(),
            "max_uses": 5,
        },
        headers=bearer(token),
    ) as resp:
        assert resp.status == 201
        guest_pass = await resp.json()
    async with r.http.post(
        f"{r.url}/api/v1/vehicles", json={"plate": "K777KK77"}, headers=bearer(token)
    ) as resp:
        assert resp.status == 201
    assert await site.partner_posts(DOOR, "pass_presented", code=guest_pass["code"]) == "accepted"
    assert await site.partner_posts(BARRIER, "plate_recognized", plate="K777KK77") == "accepted"

    status, moved = await operator.call("POST", f"{API}/residents/{dora['id']}/move-out")
    assert status == 200, moved
    assert (
        moved["rights_ended"],
        moved["passes_revoked"],
        moved["vehicles_removed"],
        moved["refresh_tokens_revoked"],
    ) == (2, 1, 1, 1)
    status, _ = await operator.call("POST", f"{API}/residents/{dora['id']}/move-out")
    assert status == 409

    status, body = await _refresh(site, tokens["refresh_token"])
    assert (status, body["error"]) == (400, "invalid_grant")
    async with r.http.post(open_url, headers=bearer(token)) as resp:
        assert resp.status == 401  # her unexpired access token is refused at once
    await site.partner_posts(DOOR, "pass_presented", code=guest_pass["code"])
    await site.partner_posts(BARRIER, "plate_recognized", plate="K777KK77")
    door_entries = [e for e in await operator.audit_of(DOOR) if e["action"] == "open"]
    barrier_entries = [e for e in await operator.audit_of(BARRIER) if e["action"] == "open"]
    assert [(e["actor"], e["decision"], e["reason"]) for e in door_entries[-2:]] == [
        (f"pass:{guest_pass['id']}", "granted", ""),
        (f"pass:{guest_pass['id']}", "denied", "pass_revoked"),
    ]
    assert barrier_entries[-2]["decision"] == "granted"
    assert (barrier_entries[-1]["decision"], barrier_entries[-1]["reason"]) == (
        "denied",
        "unknown_plate",
    )
    status, listed = await operator.call("GET", f"{API}/residents/{dora['id']}")
    assert (listed["status"], listed["apartment_id"]) == ("moved_out", "bld-a-42")
    status, found = await operator.call("GET", f"{API}/apartments", params={"building_id": "bld-a"})
    assert [a["residents"] for a in found if a["id"] == "bld-a-42"] == [0]

    with pytest.raises(AssertionError):  # she cannot log in again
        await login(
            r.http,
            r.url,
            client_id=r.credentials["mobile_client_id"],
            redirect_uri=r.credentials["redirect_uri"],
            username="dora",
            password=invited["temporary_password"],
        )

    entries = await operator.audit()
    assert [e["action"] for e in entries] == [
        "apartment.create",
        "resident.invite",
        "right.grant",
        "right.grant",
        "guest_pass.revoke",  # her pass and her car, each by id, in the move-out's transaction
        "vehicle.remove",
        "resident.move_out",
        "auth.revoke",  # her sessions, in the same transaction
        "resident.read",  # the operator looked her up afterwards
    ]
    assert all(e["decision"] == "granted" for e in entries)
    assert {e["subject"] for e in entries[1:]} == {dora["id"]}
    text = repr(entries)
    for secret in ("Dora", "Kuznetsova", "79990000044", invited["temporary_password"]):
        assert secret not in text


async def test_residents_are_refused_on_every_management_route(site: AccessNode) -> None:
    r = site.running
    token = await r.token_for("anna")
    async with r.http.get(f"{r.url}/openapi.json") as resp:
        document = await resp.json()
    calls = [
        (method.upper(), path.replace("{", "").replace("}", ""))
        for path, item in document["paths"].items()
        for method, op in item.items()
        if "management" in op.get("tags", [])
    ]
    assert len(calls) >= 20
    for method, path in calls:
        async with r.http.request(method, f"{r.url}{path}", json={}, headers=bearer(token)) as resp:
            assert resp.status == 403, (method, path, resp.status)
    async with r.http.get(f"{r.url}{API}/residents") as resp:
        assert resp.status == 401
