"""Each kind of audited action (docs/audit.md), found through ``GET /admin/api/v1/audit`` of a
running node, with the ``action=`` and ``actor=`` filters: failed opens, sign-ins and tokens,
staff actions, staff reads of personal data, CLI changes; never a password in an entry.

The embedded simulator is the vendor; its fault control makes the partner fail.
"""

from __future__ import annotations

import json
from typing import Any

from propdev.storage import Database
from propdev.storage.audit import AuditLog
from tests.e2e.conftest import RunningNode
from tests.support.oauth_client import authorization_code, login, parse_form, redeem
from tests.support.processes import cli_env, run_cli

AUDIT = "/admin/api/v1/audit"
DOOR = "ap-a-entrance"  # anna's


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def entries(node: RunningNode, operator: str, **filters: str) -> list[dict[str, Any]]:
    async with node.http.get(
        f"{node.url}{AUDIT}", params={"limit": "1000", **filters}, headers=bearer(operator)
    ) as resp:
        assert resp.status == 200, await resp.text()
        return list((await resp.json())["entries"])


async def call(
    node: RunningNode, method: str, path: str, token: str, body: Any = None
) -> tuple[int, Any]:
    async with node.http.request(
        method, f"{node.url}{path}", json=body, headers=bearer(token)
    ) as resp:
        return resp.status, await resp.json(content_type=None) if resp.status != 204 else None


async def sim_faults(node: RunningNode, mode: str) -> None:
    url = f"{node.credentials['partner_sim_url']}/sim/v1/faults"
    async with node.http.post(url, json={"mode": mode}) as resp:
        assert resp.status == 200, await resp.text()


async def me(node: RunningNode, token: str) -> str:
    status, body = await call(node, "GET", "/api/v1/me", token)
    assert status == 200
    return str(body["id"])


async def sign_in(node: RunningNode, username: str, password: str) -> int:
    """One sign-in through the form with nothing else: the form's answer status."""
    params = {
        "response_type": "code",
        "client_id": node.credentials["mobile_client_id"],
        "redirect_uri": node.credentials["redirect_uri"],
        "scope": "openid api",
        "state": "s",
        "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
        "code_challenge_method": "S256",
    }
    async with node.http.get(f"{node.url}/oauth/authorize", params=params) as resp:
        form = parse_form(await resp.text())
    fields = {**form.inputs, "username": username, "password": password, "otp": ""}
    async with node.http.post(
        f"{node.url}/oauth/authorize", data=fields, allow_redirects=False
    ) as resp:
        return resp.status


async def test_an_open_that_fails_at_the_partner_is_audited_failed_with_its_reason(
    node: RunningNode,
) -> None:
    anna = await node.token_for("anna")
    operator = await node.token_for("operator")
    anna_id = await me(node, anna)

    await sim_faults(node, "error")
    status, problem = await call(node, "POST", f"/api/v1/access-points/{DOOR}/open", anna)
    assert status == 502, problem
    await sim_faults(node, "ok")
    status, _ = await call(node, "POST", f"/api/v1/access-points/{DOOR}/open", anna)
    assert status == 200

    found = await entries(node, operator, action="open", actor=f"user:{anna_id}")
    assert [(e["decision"], e["reason"], e["subject"]) for e in found] == [
        ("failed", "partner_unavailable", anna_id),
        ("granted", "", anna_id),
    ]
    assert all(e["access_point_id"] == DOOR for e in found)


async def test_sign_ins_granted_and_denied_keep_the_attempted_name_never_the_password(
    node: RunningNode,
) -> None:
    await sign_ins_are_audited(node)


async def test_sign_ins_on_postgresql_too(pg_node: RunningNode) -> None:
    await sign_ins_are_audited(pg_node)


async def sign_ins_are_audited(node: RunningNode) -> None:
    operator = await node.token_for("operator")
    anna = node.resident("anna")
    assert await sign_in(node, "nobody-such", "guess-one-1") == 401
    assert await sign_in(node, "anna", "guess-two-2") == 401
    await login(
        node.http,
        node.url,
        client_id=node.credentials["mobile_client_id"],
        redirect_uri=node.credentials["redirect_uri"],
        username="Anna",
        password=anna["password"],
    )
    op = node.credentials["operator"]

    found = await entries(node, operator, action="auth.")
    logins = [e for e in found if e["action"] == "auth.login"]
    assert [(e["actor"], e["decision"], e["reason"]) for e in logins] == [
        (f"operator:{op['id']}", "granted", "password+otp"),
        ("anonymous", "denied", "unknown_user"),
        (f"user:{anna['id']}", "denied", "bad_password"),
        (f"user:{anna['id']}", "granted", "password"),
    ]
    assert [e["subject"] for e in logins] == [op["id"], None, anna["id"], anna["id"]]
    assert [e["personal"]["username"] for e in logins] == [
        op["username"],
        "nobody-such",
        "anna",
        "Anna",
    ]
    client = node.credentials["mobile_client_id"]
    assert all(e["personal"]["client_id"] == client for e in logins)
    assert all(e["personal"]["address"] == "127.0.0.1" for e in logins)
    assert all("nobody-such" not in e["reason"] + e["actor"] for e in logins)
    text = json.dumps(found)
    for password in ("guess-one-1", "guess-two-2", anna["password"], op["password"]):
        assert password not in text
    db = Database(node.settings.resolved().database_url)
    try:  # personal fields outside the hash, their digest in it: the chain verifies
        ok, checked, bad = await AuditLog(db).verify()
    finally:
        await db.close()
    assert (ok, bad) == (True, None) and checked >= len(logins)


async def test_refresh_reuse_and_revocation_are_audited(node: RunningNode) -> None:
    operator = await node.token_for("operator")
    anna = node.resident("anna")
    client_id = node.credentials["mobile_client_id"]
    tokens = await login(
        node.http,
        node.url,
        client_id=client_id,
        redirect_uri=node.credentials["redirect_uri"],
        username="anna",
        password=anna["password"],
    )

    async def refresh(token: str) -> tuple[int, dict[str, Any]]:
        form = {"grant_type": "refresh_token", "refresh_token": token, "client_id": client_id}
        async with node.http.post(f"{node.url}/oauth/token", data=form) as resp:
            return resp.status, await resp.json()

    status, rotated = await refresh(tokens["refresh_token"])
    assert status == 200
    status, _ = await refresh(tokens["refresh_token"])  # spent: the family is revoked
    assert status == 400
    status, _ = await refresh("never-issued")
    assert status == 400

    again = await login(
        node.http,
        node.url,
        client_id=client_id,
        redirect_uri=node.credentials["redirect_uri"],
        username="anna",
        password=anna["password"],
    )
    form = {"token": again["refresh_token"], "client_id": client_id}
    async with node.http.post(f"{node.url}/oauth/revoke", data=form) as resp:
        assert resp.status == 200

    user = f"user:{anna['id']}"
    refreshes = [
        (e["action"], e["decision"], e["reason"], e["actor"])
        for e in await entries(node, operator, action="auth.")
        if e["reason"].startswith("refresh") or e["action"] != "auth.login"
    ]
    assert refreshes == [
        ("auth.login", "granted", "refresh_token", user),
        ("auth.refresh_reuse", "denied", "family_revoked", user),
        ("auth.login", "denied", "refresh_invalid", "anonymous"),
        ("auth.revoke", "granted", "refresh_token", user),
    ]
    text = json.dumps(await entries(node, operator))
    for secret in (tokens["refresh_token"], rotated["refresh_token"], again["refresh_token"]):
        assert secret not in text


async def test_a_replayed_code_is_audited(node: RunningNode) -> None:
    operator = await node.token_for("operator")
    anna = node.resident("anna")
    client_id = node.credentials["mobile_client_id"]
    redirect_uri = node.credentials["redirect_uri"]
    code, verifier = await authorization_code(
        node.http,
        node.url,
        client_id=client_id,
        redirect_uri=redirect_uri,
        username="anna",
        password=anna["password"],
    )
    first = await redeem(
        node.http, node.url, code, verifier, client_id=client_id, redirect_uri=redirect_uri
    )
    second = await redeem(
        node.http, node.url, code, verifier, client_id=client_id, redirect_uri=redirect_uri
    )
    assert (first[0], second[0]) == (200, 400)
    found = await entries(node, operator, action="auth.code_replay")
    assert [(e["actor"], e["subject"], e["reason"]) for e in found] == [
        (f"user:{anna['id']}", anna["id"], "family_revoked")
    ]


async def test_staff_actions_and_reads_of_personal_data_are_audited_as_the_operator(
    node: RunningNode,
) -> None:
    operator = await node.token_for("operator")
    anna = await node.token_for("anna")
    op_id = str(node.credentials["operator"]["id"])
    anna_id = await me(node, anna)
    actor = f"operator:{op_id}"

    status, _ = await call(
        node,
        "POST",
        f"/admin/api/v1/access-points/{DOOR}/open",
        operator,
        {"reason": "courier at the door"},
    )
    assert status == 200
    status, restarted = await call(
        node, "POST", f"/admin/api/v1/actors/device:{DOOR}/restart", operator
    )
    assert status == 200, restarted
    status, listed = await call(node, "GET", "/admin/api/v1/residents", operator)
    assert status == 200 and anna_id in {r["id"] for r in listed}
    status, one = await call(node, "GET", f"/admin/api/v1/residents/{anna_id}", operator)
    assert status == 200 and one["full_name"]
    status, drained = await call(node, "POST", "/admin/api/v1/nodes/test-node/drain", operator)
    assert status == 200 and not drained["already"]
    status, problem = await call(node, "POST", f"/api/v1/access-points/{DOOR}/open", anna)
    assert status == 503, problem  # answered by the drained node itself: audited here

    mine = await entries(node, operator, actor=actor)
    assert [e["action"] for e in mine if e["action"] != "auth.login"] == [
        "manual_open",
        "actor.restart",
        *["resident.read"] * len(listed),
        "resident.read",
        "node.drain",
    ]
    manual = next(e for e in mine if e["action"] == "manual_open")
    assert (manual["decision"], manual["reason"]) == ("granted", "courier at the door")
    restart = next(e for e in mine if e["action"] == "actor.restart")
    assert restart["reason"] == f"actor_id=device:{DOOR}"
    reads = await entries(node, operator, action="resident.read")
    assert sorted(e["subject"] for e in reads[:-1]) == sorted(r["id"] for r in listed)
    assert (reads[-1]["subject"], reads[-1]["reason"]) == (
        anna_id,
        f"user_id={anna_id} via=get read=1",
    )
    assert all(one["full_name"] not in json.dumps(e) for e in reads)
    refused = await entries(node, operator, action="open", actor=f"user:{anna_id}")
    assert [(e["decision"], e["reason"]) for e in refused] == [("failed", "node_draining")]


async def test_a_move_out_revokes_the_residents_sessions_in_the_audit(node: RunningNode) -> None:
    operator = await node.token_for("operator")
    vera = node.resident("vera")
    status, _ = await call(node, "POST", f"/admin/api/v1/residents/{vera['id']}/move-out", operator)
    assert status == 200
    found = await entries(node, operator, action="auth.revoke")
    assert [(e["actor"], e["subject"]) for e in found] == [
        (f"operator:{node.credentials['operator']['id']}", vera["id"])
    ]
    assert found[0]["reason"].startswith(f"user_id={vera['id']} cause=resident.move_out")


async def test_cli_changes_to_partners_and_recovery_codes_are_audited_as_cli(
    node: RunningNode,
) -> None:
    env = cli_env(node.settings.data_dir)
    op = node.credentials["operator"]
    issued = await run_cli(["pki", "issue-partner", "acme-audit"], env)
    assert issued.returncode == 0, str(issued)
    revoked = await run_cli(["pki", "revoke-partner", "acme-audit"], env)
    assert revoked.returncode == 0, str(revoked)
    codes = await run_cli(["totp", "recovery-codes", op["username"]], env)
    assert codes.returncode == 0, str(codes)
    new_codes = json.loads(codes.stdout)["recovery_codes"]

    operator = await node.token_for("operator")
    found = await entries(node, operator, actor="cli")
    assert [(e["action"], e["subject"]) for e in found] == [
        ("partner.issue", None),
        ("partner.revoke", None),
        ("auth.recovery_codes", op["id"]),
    ]
    assert found[0]["reason"].startswith("partner=acme-audit ")
    text = json.dumps(found)
    assert all(code not in text for code in new_codes)


async def test_refused_self_service_is_audited_denied_never_with_the_secret(
    node: RunningNode,
) -> None:
    operator = await node.token_for("operator")
    anna, boris, vera = (node.resident(n) for n in ("anna", "boris", "vera"))
    anna_token, boris_token = await node.token_for("anna"), await node.token_for("boris")
    vera_token = await node.token_for("vera")  # a member of anna's household, not its owner

    body = {"current_password": "not-her-password-1", "new_password": "a long new passphrase"}
    status, _ = await call(node, "POST", "/api/v1/me/password", anna_token, body)
    assert status == 403
    status, _ = await call(node, "POST", "/api/v1/vehicles", anna_token, {"plate": "K321MP77"})
    assert status == 201
    status, _ = await call(node, "POST", "/api/v1/vehicles", boris_token, {"plate": "K321MP77"})
    assert status == 409
    member = {"full_name": "Someone Else", "phone": "+79990000099"}
    status, _ = await call(node, "POST", "/api/v1/household/members", vera_token, member)
    assert status == 403

    found = [
        (e["action"], e["actor"], e["subject"], e["reason"], e["personal"])
        for e in await entries(node, operator)
        if e["decision"] == "denied" and e["action"] != "auth.login"
    ]
    assert found == [
        (
            "account.password_change",
            f"user:{anna['id']}",
            anna["id"],
            "bad_password",
            {"address": "127.0.0.1"},
        ),
        (
            "vehicle.register",
            f"user:{boris['id']}",
            boris["id"],
            f"plate_taken owner_id={boris['id']}",
            None,
        ),
        (
            "household.invite",
            f"user:{vera['id']}",
            vera["id"],
            f"not_owner user_id={vera['id']}",
            None,
        ),
    ]
    text = json.dumps(await entries(node, operator))
    assert "not-her-password-1" not in text and "K321MP77" not in text


async def test_malformed_filters_are_a_400_problem(node: RunningNode) -> None:
    operator = await node.token_for("operator")
    for params in (
        {"action": "Auth Login"},
        {"action": "x" * 201},
        {"actor": "operator: 1"},
        {"actor": "a\x01b"},
        {"limit": "0"},
    ):
        async with node.http.get(
            f"{node.url}{AUDIT}", params=params, headers=bearer(operator)
        ) as resp:
            assert resp.status == 400, params
            assert resp.content_type == "application/problem+json"
    async with node.http.get(
        f"{node.url}{AUDIT}?action=auth.&action=open", headers=bearer(operator)
    ) as resp:
        assert resp.status == 400
    # Combined with the others: the operator's own sign-in, nothing else, by action and actor.
    op_id = node.credentials["operator"]["id"]
    both = await entries(node, operator, action="auth.log", actor=f"operator:{op_id}", after="0")
    assert [e["action"] for e in both] == ["auth.login"]
    assert await entries(node, operator, action="auth_", actor=f"operator:{op_id}") == []
