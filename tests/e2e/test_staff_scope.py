"""Staff created through the API see exactly their scope, against a running node on SQLite and
on PostgreSQL: lists filtered, another site's door a 404, a call their role may not make a 403,
the audit filtered; disabling an account ends its access at once; the last organisation-wide
admin stays one.
"""

from __future__ import annotations

import time
import urllib.parse
from dataclasses import dataclass
from typing import Any

import pytest

from tests.e2e.conftest import RunningNode
from tests.support.eventually import eventually
from tests.support.oauth_client import login

API = "/admin/api/v1"
RIVERSIDE, HARBOUR = "site-riverside", "site-harbour"
RIVERSIDE_POINTS = {"ap-a-entrance", "ap-a-courtyard", "ap-parking"}
HARBOUR_POINTS = {"ap-b-entrance", "ap-b-courtyard"}


@pytest.fixture(params=["node", "pg_node"])
def running(request: pytest.FixtureRequest) -> RunningNode:
    """The demo node, on SQLite and on PostgreSQL."""
    node: RunningNode = request.getfixturevalue(request.param)
    return node


@dataclass
class Caller:
    r: RunningNode
    token: str
    id: str = ""

    async def call(self, method: str, path: str, body: Any = None, **params: str) -> Any:
        async with self.r.http.request(
            method,
            f"{self.r.url}{path}",
            json=body,
            params=params or None,
            headers={"Authorization": f"Bearer {self.token}"},
        ) as resp:
            data = await resp.json() if resp.content_type.endswith("json") else None
            return resp.status, data


async def admin(r: RunningNode) -> Caller:
    return Caller(r, await r.token_for("operator"), str(r.credentials["operator"]["id"]))


async def enrol(
    r: RunningNode, boss: Caller, username: str, roles: list[str], sites: Any
) -> Caller:
    """Create a staff account through the API, activate it, log in with its new TOTP seed."""
    body = {"username": username, "full_name": username.title(), "roles": roles, "site_ids": sites}
    status, created = await boss.call("POST", f"{API}/operators", body)
    assert status == 201, created
    assert set(created) == {"id", "username", "activation_code"}
    password = f"{username}-correct-horse-battery"
    async with r.http.post(
        f"{r.url}/api/v1/activation",
        json={
            "username": username,
            "activation_code": created["activation_code"],
            "password": password,
        },
    ) as resp:
        assert resp.status == 200
        uri = (await resp.json())["totp_uri"]
    assert uri.startswith("otpauth://totp/")
    secret = urllib.parse.parse_qs(urllib.parse.urlparse(uri).query)["secret"][0]
    tokens = await login(
        r.http,
        r.url,
        client_id=r.credentials["mobile_client_id"],
        redirect_uri=r.credentials["redirect_uri"],
        username=username,
        password=password,
        totp_secret=secret,
    )
    return Caller(r, str(tokens["access_token"]), str(created["id"]))


async def ids(caller: Caller, path: str, **params: str) -> set[str]:
    status, found = await caller.call("GET", f"{API}/{path}", **params)
    assert status == 200, found
    return {str(x["id"]) for x in found}


async def audit_points(caller: Caller) -> set[str | None]:
    status, page = await caller.call("GET", f"{API}/audit", limit="1000")
    assert status == 200
    return {e["access_point_id"] for e in page["entries"]}


async def test_a_site_operator_an_auditor_and_a_scoped_admin_see_exactly_their_scope(
    running: RunningNode,
) -> None:
    r = running
    boss = await admin(r)
    residents = {x["username"]: x["id"] for x in r.credentials["residents"]}
    # Something in the audit at each site: Anna's door opened by the admin, Boris's too.
    for door in ("ap-a-entrance", "ap-b-entrance"):
        status, _ = await boss.call("POST", f"{API}/access-points/{door}/open", {"reason": "test"})
        assert status == 200
    operator = await enrol(r, boss, "harbour-duty", ["operator"], [HARBOUR])
    auditor = await enrol(r, boss, "riverside-audit", ["auditor"], [RIVERSIDE])
    scoped_admin = await enrol(r, boss, "harbour-admin", ["admin"], [HARBOUR])

    # Lists: exactly their site's.
    assert await ids(operator, "access-points") == HARBOUR_POINTS
    assert await ids(auditor, "access-points") == RIVERSIDE_POINTS
    assert await ids(boss, "access-points") == RIVERSIDE_POINTS | HARBOUR_POINTS
    assert await ids(operator, "sites") == {HARBOUR}
    assert await ids(operator, "residents") == {residents["boris"]}
    assert await ids(auditor, "residents") == {residents["anna"], residents["vera"]}
    assert await ids(scoped_admin, "buildings") == {"bld-b"}

    # Another site's door, resident, building: not found, as if they did not exist.
    for caller, door in ((operator, "ap-a-entrance"), (auditor, "ap-b-entrance")):
        assert (await caller.call("GET", f"{API}/access-points/{door}"))[0] == 404
    status, _ = await operator.call(
        "POST", f"{API}/access-points/ap-a-entrance/open", {"reason": "x y z"}
    )
    assert status == 404
    assert (await operator.call("GET", f"{API}/residents/{residents['anna']}"))[0] == 404
    assert (await scoped_admin.call("GET", f"{API}/access-points", building_id="bld-a"))[0] == 404

    # What the role may not do: 403, wherever it is.
    status, problem = await auditor.call(
        "POST", f"{API}/access-points/ap-a-entrance/open", {"reason": "x y z"}
    )
    assert status == 403, problem
    assert (await operator.call("POST", f"{API}/residents/{residents['boris']}/move-out"))[0] == 403
    assert (await operator.call("GET", f"{API}/operators"))[0] == 403
    assert (await scoped_admin.call("POST", f"{API}/sites", {"id": "s9", "name": "S9"}))[0] == 403

    # In scope, the role may: the operator opens its site's door; the scoped admin builds there.
    status, _ = await operator.call(
        "POST", f"{API}/access-points/ap-b-courtyard/open", {"reason": "delivery"}
    )
    assert status == 200
    building = {"id": "bld-h2", "site_id": HARBOUR, "name": "H2"}
    assert (await scoped_admin.call("POST", f"{API}/buildings", building))[0] == 201
    elsewhere = {"id": "bld-r2", "site_id": RIVERSIDE, "name": "R2"}
    assert (await scoped_admin.call("POST", f"{API}/buildings", elsewhere))[0] == 404

    # The audit: each sees its sites' doors only.
    assert (await audit_points(operator)) - {None} <= HARBOUR_POINTS
    assert {"ap-b-entrance", "ap-b-courtyard"} <= await audit_points(operator)
    assert (await audit_points(auditor)) - {None} <= RIVERSIDE_POINTS
    assert "ap-a-entrance" in await audit_points(auditor)
    assert {"ap-a-entrance", "ap-b-entrance"} <= await audit_points(boss)

    # Staff: a scoped admin sees and makes staff of its own sites only.
    harbour_staff = await ids(scoped_admin, "operators")
    assert {operator.id, scoped_admin.id} <= harbour_staff
    assert not {boss.id, auditor.id} & harbour_staff
    assert (await scoped_admin.call("GET", f"{API}/operators/{auditor.id}"))[0] == 404
    for sites, expected in (([RIVERSIDE], 404), (None, 403), (["no-such-site"], 404)):
        body = {"username": "x-new", "full_name": "X", "roles": ["operator"], "site_ids": sites}
        assert (await scoped_admin.call("POST", f"{API}/operators", body))[0] == expected
    bad = {"username": "x-new", "full_name": "X", "roles": ["janitor"], "site_ids": [HARBOUR]}
    status, problem = await scoped_admin.call("POST", f"{API}/operators", bad)
    assert (status, problem["field"]) == (400, "roles")
    assert "x-new" not in {o["username"] for o in (await boss.call("GET", f"{API}/operators"))[1]}


async def test_a_disabled_staff_account_stops_at_once_and_the_last_admin_stays(
    running: RunningNode,
) -> None:
    r = running
    boss = await admin(r)
    operator = await enrol(r, boss, "night-duty", ["operator"], [RIVERSIDE])
    assert (await operator.call("GET", f"{API}/access-points"))[0] == 200

    status, _ = await boss.call("DELETE", f"{API}/operators/{operator.id}")
    assert status == 204
    gone = time.monotonic()

    async def refused() -> bool:
        return (await operator.call("GET", f"{API}/access-points"))[0] == 401

    await eventually(refused, within=1.0, what="the disabled account's token refused")
    assert time.monotonic() - gone < 1.0
    status, shown = await boss.call("GET", f"{API}/operators/{operator.id}")
    assert (status, shown["status"]) == (200, "disabled")
    assert (await boss.call("DELETE", f"{API}/operators/{operator.id}"))[0] == 204  # again

    # The only organisation-wide admin: neither disabled nor narrowed.
    status, problem = await boss.call("DELETE", f"{API}/operators/{boss.id}")
    assert status == 409, problem
    narrowed = await boss.call("PATCH", f"{API}/operators/{boss.id}", {"site_ids": [RIVERSIDE]})
    assert narrowed[0] == 409
    assert (await boss.call("GET", f"{API}/access-points"))[0] == 200

    # The audit names each change, by whom, about whom.
    status, page = await boss.call("GET", f"{API}/audit", limit="1000")
    mine = [e for e in page["entries"] if e["action"].startswith("operator.")]
    assert [(e["action"], e["actor"], e["reason"]) for e in mine] == [
        ("operator.create", f"operator:{boss.id}", f"id={operator.id}"),
        ("operator.disable", f"operator:{boss.id}", f"id={operator.id}"),
    ]


async def test_a_change_of_scope_counts_at_the_next_call_and_2fa_is_reset_by_an_admin(
    node: RunningNode,
) -> None:
    r = node
    boss = await admin(r)
    auditor = await enrol(r, boss, "roving-audit", ["auditor"], [RIVERSIDE])
    assert await ids(auditor, "access-points") == RIVERSIDE_POINTS
    # Enrolled (its first login took a TOTP code): its recovery codes, once.
    status, codes = await auditor.call("POST", f"{API}/me/recovery-codes")
    assert status == 201 and len(set(codes["recovery_codes"])) == 10
    status, left = await auditor.call("GET", f"{API}/me/recovery-codes")
    assert (status, left["remaining"], left["issued"]) == (200, 10, 10)
    status, changed = await boss.call(
        "PATCH", f"{API}/operators/{auditor.id}", {"site_ids": [HARBOUR], "roles": ["operator"]}
    )
    assert (status, changed["site_ids"], changed["roles"]) == (200, [HARBOUR], ["operator"])
    assert await ids(auditor, "access-points") == HARBOUR_POINTS  # the same token

    status, reset = await boss.call("POST", f"{API}/operators/{auditor.id}/reset-2fa")
    assert status == 201 and reset["activation_code"]

    async def signed_out() -> bool:
        return (await auditor.call("GET", f"{API}/access-points"))[0] == 401

    await eventually(signed_out, within=5.0, what="the reset account's sessions ended")
    status, shown = await boss.call("GET", f"{API}/operators/{auditor.id}")
    assert (shown["status"], shown["totp_enrolled"]) == ("pending", False)


async def demo_staff(r: RunningNode, username: str) -> Caller:
    """A demo staff account of ``demo-credentials.json``, logged in with its TOTP seed."""
    found = next(o for o in r.credentials["operators"] if o["username"] == username)
    tokens = await login(
        r.http,
        r.url,
        client_id=r.credentials["mobile_client_id"],
        redirect_uri=r.credentials["redirect_uri"],
        username=username,
        password=found["password"],
        totp_secret=found["totp_secret"],
    )
    return Caller(r, str(tokens["access_token"]), str(found["id"]))


async def test_the_console_feed_shows_a_site_operator_only_its_site(node: RunningNode) -> None:
    r = node
    harbour = await demo_staff(r, "harbour-operator")
    boss = await admin(r)
    # A device actor at each site, active on this node.
    for door in ("ap-a-entrance", "ap-b-entrance"):
        status, _ = await boss.call("POST", f"{API}/access-points/{door}/open", {"reason": "feed"})
        assert status == 200

    def actors(tree: dict[str, Any]) -> set[str]:
        found = {a["id"] for a in tree.get("actors", [])}
        for sub in tree.get("supervisors", []):
            found |= actors(sub)
        return found

    async with r.http.ws_connect(
        f"{r.url}{API}/ws", headers={"Authorization": f"Bearer {harbour.token}"}
    ) as feed:
        snapshot = await feed.receive_json(timeout=10)
    assert {d["id"] for d in snapshot["devices"]} == HARBOUR_POINTS
    assert "device:ap-b-entrance" in actors(snapshot["tree"])
    assert not any(a.startswith("device:ap-a") for a in actors(snapshot["tree"]))
    status, tree = await harbour.call("GET", f"{API}/actors")
    assert (status, actors(tree)) == (200, {"device:ap-b-entrance"})  # no partner, no node actor
    status, everything = await boss.call("GET", f"{API}/actors")
    assert {"device:ap-a-entrance", "device:ap-b-entrance"} <= actors(everything)
    status, breakers = await harbour.call("GET", f"{API}/breakers")
    assert [b["partner_id"] for b in breakers["breakers"]] == ["simulator"]  # serves its doors
