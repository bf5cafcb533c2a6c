"""The account self-service routes answer inside the document: each status and body."""

from __future__ import annotations

from typing import Any

import pytest

from propdev.accounts import OutboxNotifier
from tests.contract.contract import Contract
from tests.contract.test_observed_responses import Observer
from tests.e2e.conftest import RunningNode
from tests.e2e.test_account_self_service import NEW, sign_in
from tests.support.eventually import eventually

pytestmark = pytest.mark.slow

JSON = {"Content-Type": "application/json"}


async def test_the_account_routes_answer_inside_the_document(node: RunningNode) -> None:
    async with node.http.get(f"{node.url}/openapi.json") as resp:
        o = Observer(node, Contract(await resp.json()))
    resident = node.credentials["residents"][0]
    username, password = str(resident["username"]), str(resident["password"])
    first = await sign_in(node, username, password)
    second = await sign_in(node, username, password)

    def post(path: str, body: dict[str, Any], expect: int, token: str | None = None) -> Any:
        return o.call("POST", path, token=token, expect=expect, json=body, headers=JSON)

    sessions = await o.call("GET", "/api/v1/me/sessions", token=first.access, expect=200)
    other = next(s["id"] for s in sessions if not s["current"])
    await o.call("DELETE", "/api/v1/me/sessions/nope", token=first.access, expect=404)
    await o.call("DELETE", f"/api/v1/me/sessions/{other}", token=first.access, expect=204)
    await o.call("GET", "/api/v1/me/sessions", token=second.access, expect=401)

    weak = {"current_password": password, "new_password": "12345678"}
    await post("/api/v1/me/password", weak, 400, first.access)
    change = {"current_password": "nope-nope", "new_password": NEW}
    await post("/api/v1/me/password", change, 403, first.access)
    await post("/api/v1/me/password", {**change, "current_password": password}, 204, first.access)

    await post("/api/v1/password-reset", {"username": username, "x": 1}, 400)
    await post("/api/v1/password-reset", {"username": username}, 202)
    outbox = OutboxNotifier(node.settings.data_dir / "outbox.jsonl")

    async def codes() -> list[str]:
        return [m.code for m in outbox.messages()]

    [code] = await eventually(codes, within=10, what="the reset code")
    confirm = {"username": username, "code": "00000000", "new_password": "another passphrase"}
    if code == confirm["code"]:
        confirm["code"] = "11111111"
    await post("/api/v1/password-reset/confirm", confirm, 400)
    await post("/api/v1/password-reset/confirm", {**confirm, "code": code}, 204)

    activation = {"username": username, "activation_code": "aaaa-bbbb-cccc", "password": NEW}
    await post("/api/v1/activation", activation, 400)
