"""Hostile JSON bodies against a real node: too deep, duplicate keys, the wrong media type, a body
where none belongs, other scripts' digits. Each is a 4xx problem, never a 500, and changes
nothing."""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e.conftest import RunningNode
from tests.security.helpers import sim_commands
from tests.support.partner import event, partner_client

DEEP = b"[" * 1000  # 1 KB that used to raise RecursionError in json.loads
DOOR = "ap-a-entrance"
DEVICE = "sim-door-1"
METER = "m-a12-cw"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def call(
    node: RunningNode,
    method: str,
    path: str,
    body: bytes,
    *,
    token: str | None = None,
    content_type: str = "application/json",
) -> tuple[int, Any]:
    headers = {"Content-Type": content_type, **(bearer(token) if token else {})}
    async with node.http.request(method, node.url + path, data=body, headers=headers) as resp:
        return resp.status, await resp.json(content_type=None)


async def get(node: RunningNode, path: str, token: str | None = None) -> Any:
    async with node.http.get(node.url + path, headers=bearer(token) if token else {}) as resp:
        assert resp.status == 200, await resp.text()
        return await resp.json()


def assert_problem(answer: tuple[int, Any], status: int, kind: str, words: str) -> None:
    got, problem = answer
    assert got == status, problem
    assert problem["status"] == status
    assert problem["type"].endswith("/" + kind), problem
    assert words in problem["detail"], problem


async def test_deeply_nested_json_is_a_400_on_every_kind_of_route_and_changes_nothing(
    node: RunningNode,
) -> None:
    anna = await node.token_for("anna")
    faults = await get(node, "/sim/v1/faults")
    meters = await get(node, "/gateway/v1/utilities/meters", anna)

    # Unauthenticated (the simulator's control API on the node), resident, ЖКХ gateway.
    for path, token in (
        ("/sim/v1/faults", None),
        ("/sim/v1/devices", None),
        ("/api/v1/guest-passes", anna),
        ("/api/v1/vehicles", anna),
        ("/gateway/v1/utilities/meter-readings", anna),
    ):
        answer = await call(node, "POST", path, DEEP, token=token)
        assert answer[0] == 400, (path, answer)
        assert "nested too deeply" in answer[1]["detail"] or path.startswith("/sim/"), answer
    assert_problem(
        await call(node, "POST", "/api/v1/guest-passes", DEEP, token=anna),
        400,
        "bad-request",
        "nested too deeply",
    )

    assert await get(node, "/sim/v1/faults") == faults
    assert await get(node, "/api/v1/guest-passes", anna) == []
    assert await get(node, "/api/v1/vehicles", anna) == []
    assert await get(node, "/gateway/v1/utilities/meters", anna) == meters


async def test_deeply_nested_json_from_a_partner_is_a_400_and_changes_nothing(
    node: RunningNode,
) -> None:
    anna = await node.token_for("anna")
    before = await get(node, "/api/v1/access-points", anna)
    deep = b'{"events": [' + b"[" * 1000 + b"]" * 1000 + b"]}"
    async with partner_client(node.url, node.settings.data_dir, "simulator") as partner:
        token = await partner.token()
        status, problem = await partner.post([], token=token, raw=deep)
        assert (status, problem["status"]) == (400, 400), problem
        assert "nested too deeply" in problem["detail"]

        duplicate = (
            b'{"events": [], "events": [%s]}'
            % (
                f'{{"event_id": "e1", "device_id": "{DEVICE}", "type": "device_offline", '
                '"occurred_at": "2026-01-01T00:00:00+00:00"}'
            ).encode()
        )
        status, problem = await partner.post([], token=token, raw=duplicate)
        assert (status, problem["key"]) == (400, "events"), problem

        status, body = await partner.post([event(DEVICE, "device_online")], token=token)
        assert status == 202, body  # the same client, with a body we take: accepted
    after = await get(node, "/api/v1/access-points", anna)
    assert [p["id"] for p in after] == [p["id"] for p in before]


async def test_a_json_body_declared_as_something_else_is_a_415(node: RunningNode) -> None:
    anna = await node.token_for("anna")
    operator = await node.token_for("operator")
    valid = b'{"plate": "A123BC77"}'
    for content_type in ("text/plain", "application/x-www-form-urlencoded", "application/jsonx"):
        answer = await call(
            node, "POST", "/api/v1/vehicles", valid, token=anna, content_type=content_type
        )
        assert_problem(answer, 415, "unsupported-media-type", "application/json")
    assert_problem(
        await call(
            node,
            "POST",
            "/api/v1/vehicles",
            valid,
            token=anna,
            content_type="application/json; charset=latin-1",
        ),
        415,
        "unsupported-media-type",
        "UTF-8",
    )
    assert_problem(
        await call(
            node,
            "POST",
            f"/admin/api/v1/access-points/{DOOR}/open",
            b'{"reason": "a courier at the door"}',
            token=operator,
            content_type="text/plain",
        ),
        415,
        "unsupported-media-type",
        "application/json",
    )
    assert await get(node, "/api/v1/vehicles", anna) == []
    assert await sim_commands(node) == []

    # application/*+json and an explicit utf-8 are JSON.
    status, vehicle = await call(
        node,
        "POST",
        "/api/v1/vehicles",
        valid,
        token=anna,
        content_type="application/merge-patch+json; charset=UTF-8",
    )
    assert status == 201, vehicle


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (b'{"plate": "A123BC77", "plate": "B456CD77"}', 'the key "plate" appears twice'),
        (b'{"plate": NaN}', "NaN is not a JSON number"),
        (b'{"plate": "A123BC77"}\xff', "not valid UTF-8"),
    ],
)
async def test_duplicate_keys_nan_and_bad_utf8_are_a_400(
    node: RunningNode, body: bytes, words: str
) -> None:
    anna = await node.token_for("anna")
    assert_problem(
        await call(node, "POST", "/api/v1/vehicles", body, token=anna), 400, "bad-request", words
    )
    assert await get(node, "/api/v1/vehicles", anna) == []


async def test_open_takes_no_body_but_an_empty_one_or_an_empty_object(node: RunningNode) -> None:
    anna = await node.token_for("anna")
    path = f"/api/v1/access-points/{DOOR}/open"
    for body in (b"{not json", b"[]", b'{"force": true}', b"null", DEEP):
        status, problem = await call(node, "POST", path, body, token=anna)
        assert (status, problem["status"]) == (400, 400), (body, problem)
    assert await sim_commands(node) == []  # nothing opened

    for body in (b"", b"{}"):
        status, granted = await call(node, "POST", path, body, token=anna)
        assert (status, granted["status"]) == (200, "granted"), granted
    assert len(await sim_commands(node)) == 2


async def test_full_width_digits_are_not_a_meter_reading(node: RunningNode) -> None:
    anna = await node.token_for("anna")
    meters = await get(node, "/gateway/v1/utilities/meters", anna)
    for value in ("\uff12\uff13\uff12", "232\u0660", " 232", "2.32e2"):
        body = f'{{"meter_id": "{METER}", "value": "{value}"}}'.encode()
        status, problem = await call(
            node, "POST", "/gateway/v1/utilities/meter-readings", body, token=anna
        )
        assert (status, problem["field"], problem["reason"]) == (422, "value", "not_a_number"), (
            value,
            problem,
        )
    assert await get(node, "/gateway/v1/utilities/meters", anna) == meters

    body = f'{{"meter_id": "{METER}", "value": "232"}}'.encode()  # the same in ASCII: taken
    status, reading = await call(
        node, "POST", "/gateway/v1/utilities/meter-readings", body, token=anna
    )
    assert status == 201, reading
